"""EMR security configuration: at-rest encryption (local disks + EBS with a rotating KMS key, S3 SSE) and
IMDSv2 on every node."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_emr as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# What the nodes do with the key: LUKS-encrypt local disks (data keys) and read them back.
NODE_KEY_ACTIONS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
]
# EBS encryption: the EMR service role must be a key user, including grants for AWS resources (EBS).
SERVICE_KEY_ACTIONS = NODE_KEY_ACTIONS
SERVICE_GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]


class EmrSecurityConfiguration(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, ec2_role: iam.IRole, service_role: iam.IRole
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "LocalDiskKey",
            description="EMR local disk and EBS encryption of the Fruits pipeline cluster",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        ec2_role.add_to_principal_policy(
            iam.PolicyStatement(sid="UseLocalDiskKey", actions=NODE_KEY_ACTIONS, resources=[self.key.key_arn])
        )
        service_role.add_to_principal_policy(
            iam.PolicyStatement(sid="UseEbsKey", actions=SERVICE_KEY_ACTIONS, resources=[self.key.key_arn])
        )
        service_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="GrantEbsKeyToAwsResources",
                actions=SERVICE_GRANT_ACTIONS,
                resources=[self.key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )

        self.document = {
            "EncryptionConfiguration": {
                "EnableAtRestEncryption": True,
                "EnableInTransitEncryption": False,
                "AtRestEncryptionConfiguration": {
                    "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"},
                    "LocalDiskEncryptionConfiguration": {
                        "EncryptionKeyProviderType": "AwsKms",
                        "AwsKmsKey": self.key.key_arn,
                        "EnableEbsEncryption": True,
                    },
                },
            },
            "InstanceMetadataServiceConfiguration": {
                "MinimumInstanceMetadataServiceVersion": 2,
                "HttpPutResponseHopLimit": 1,
            },
        }
        self.resource = emr.CfnSecurityConfiguration(self, "Resource", security_configuration=self.document)

    @property
    def name(self) -> str:
        return self.resource.ref
