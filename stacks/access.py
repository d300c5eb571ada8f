"""IAM for the cluster: EMR service role and the EC2 instance role + instance profile of the nodes."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

EMR_SERVICE_POLICY = "service-role/AmazonEMRServicePolicy_v2"


class EmrRoles(Construct):
    """Service role (AmazonEMRServicePolicy_v2 + iam:PassRole on our EC2 role only) and the EC2 role.

    The EC2 role starts empty: the stack adds exactly the S3 and KMS statements it needs (read code and
    input, read/write runs/, write emr-logs/, use the key). No AWS-managed policy is attached to it:
    AmazonElasticMapReduceforEC2Role is broad and on its way to deprecation.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.ec2_role = iam.Role(
            self,
            "Ec2Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="EMR cluster nodes (instance profile): job code, input, runs/, emr-logs/, KMS key",
        )
        # EMR takes the instance profile by name and expects it to be named like its role.
        self.instance_profile = iam.InstanceProfile(
            self,
            "Ec2InstanceProfile",
            role=self.ec2_role,
            instance_profile_name=self.ec2_role.role_name,
        )

        # Trust only EMR acting for this account and region (confused-deputy protection).
        emr_principal = iam.ServicePrincipal(
            "elasticmapreduce.amazonaws.com",
            conditions={
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                "ArnLike": {
                    "aws:SourceArn": f"arn:{Aws.PARTITION}:elasticmapreduce:{Aws.REGION}:{Aws.ACCOUNT_ID}:*"
                },
            },
        )
        self.service_role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=emr_principal,
            description="EMR service role of the Fruits pipeline cluster",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(EMR_SERVICE_POLICY)],
        )
        # AmazonEMRServicePolicy_v2 may only pass a role named EMR_EC2_DefaultRole: allow ours, to EC2 only.
        self.service_role.add_to_policy(
            iam.PolicyStatement(
                sid="PassClusterInstanceRole",
                actions=["iam:PassRole"],
                resources=[self.ec2_role.role_arn],
                conditions={"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}},
            )
        )
        Validations.of(self.service_role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{EMR_SERVICE_POLICY}]",
                reason="AmazonEMRServicePolicy_v2 is the AWS-maintained EMR service policy; its EC2 "
                "actions are scoped by the for-use-with-amazon-emr-managed-policies tag, which only our "
                "VPC, subnets, security groups and cluster carry",
            )
        )

    @property
    def instance_profile_name(self) -> str:
        return self.instance_profile.instance_profile_name
