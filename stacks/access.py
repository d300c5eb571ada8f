"""IAM for the cluster: EMR service role and the EC2 instance role + instance profile of the nodes."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Aws, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.sg_rule_revoker import EMR_ENDPOINT_TAGS

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

    def allow_emr_service_endpoint(
        self, *, vpc: ec2.IVpc, subnets: Sequence[ec2.ISubnet], group: ec2.ISecurityGroup
    ) -> None:
        """emr-spark-8.x: let EMR create and modify the VPC endpoint to its service in our VPC, nothing else.

        The 8.0.0 notes (https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-spark800-release.html) ask
        for ec2:CreateVpcEndpoint and ec2:ModifyVpcEndpoint on the service role. AmazonEMRServicePolicy_v2
        (v6, 2026-02) seems to grant them already, for EMR-tagged networks; these statements keep the stack
        independent of the managed policy's version, and narrower:
        - the network side: this VPC, the cluster's subnets and the service-access group only;
        - the endpoint: an AWS service's (ec2:VpceServiceOwner amazon,
          https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-iam.html), created with the tags
          the managed policy requires, so that the teardown (stacks/sg_rule_revoker.py), which deletes
          endpoints by those tags, can delete every endpoint EMR can create;
        - modified only while it carries those tags.
        """
        stack = Stack.of(self)
        endpoints = stack.format_arn(service="ec2", resource="vpc-endpoint", resource_name="*")
        network = [
            stack.format_arn(service="ec2", resource="vpc", resource_name=vpc.vpc_id),
            *(stack.format_arn(service="ec2", resource="subnet", resource_name=s.subnet_id) for s in subnets),
            stack.format_arn(service="ec2", resource="security-group", resource_name=group.security_group_id),
        ]
        request_tags = {f"aws:RequestTag/{key}": value for key, value in EMR_ENDPOINT_TAGS.items()}
        resource_tags = {f"aws:ResourceTag/{key}": value for key, value in EMR_ENDPOINT_TAGS.items()}
        for statement in (
            iam.PolicyStatement(
                sid="EmrServiceEndpointInClusterNetwork",
                actions=["ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint"],
                resources=network,
            ),
            iam.PolicyStatement(
                sid="CreateEmrServiceEndpoint",
                actions=["ec2:CreateVpcEndpoint"],
                resources=[endpoints],
                conditions={"StringEquals": {"ec2:VpceServiceOwner": "amazon", **request_tags}},
            ),
            iam.PolicyStatement(
                sid="TagEmrServiceEndpointOnCreate",
                actions=["ec2:CreateTags"],
                resources=[endpoints],
                conditions={"StringEquals": {"ec2:CreateAction": "CreateVpcEndpoint", **request_tags}},
            ),
            iam.PolicyStatement(
                sid="ModifyEmrServiceEndpoint",
                actions=["ec2:ModifyVpcEndpoint"],
                resources=[endpoints],
                conditions={"StringEquals": resource_tags},
            ),
        ):
            self.service_role.add_to_policy(statement)
        Validations.of(self.service_role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:ec2:{stack.region}:<AWS::AccountId>:"
                "vpc-endpoint/*]",
                reason="EMR 8 creates the VPC endpoint to its service at cluster launch, so its id is "
                "unknown at deploy; creating is limited to an AWS service's endpoint tagged "
                "Name=emr-service-vpce and for-use-with-amazon-emr-managed-policies=true in this VPC's EMR "
                "subnets and service-access group, tagging to that creation, and modifying to endpoints "
                "carrying those tags",
            )
        )

    @property
    def instance_profile_name(self) -> str:
        return self.instance_profile.instance_profile_name
