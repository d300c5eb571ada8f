"""Destroy without leftovers: a delete-time custom resource revoking the EMR security groups' rules and
deleting the VPC endpoints EMR created in our VPC (`emr-service-vpce`, AmazonEMRServicePolicy_v2 v6).

Deletion order, enforced with dependencies (CloudFormation deletes dependents first):

    cluster  ->  group rule resources (ours)  ->  revoker (revokes what EMR added)  ->  security groups

- the cluster depends on the revoker and on every rule resource: it is created last and deleted first, so
  no node is left when the rules go;
- every CDK rule resource (AWS::EC2::SecurityGroupIngress/Egress) depends on the revoker: CloudFormation
  deletes its own rules first, then the revoker's Delete revokes the rules EMR added at launch;
- the revoker depends on the groups and the VPC (it takes their ids), so they are deleted after it,
  rule-free and with no endpoint of EMR's left in the VPC.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, ArnFormat, CustomResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

HANDLER_DIR = Path(__file__).parent / "lambda" / "sg_revoker"
RESOURCE_TYPE = "Custom::SecurityGroupRuleRevoker"
# The tags of the endpoints EMR creates in our VPC: AmazonEMRServicePolicy_v2 (CreateEmrServiceVPCEndpoint)
# and, on emr-spark-8.x, the service role's own statements (stacks/access.py) let EMR create an endpoint only
# with them; the revoker deletes by them (its handler's EMR_ENDPOINT_TAGS, kept equal by a test).
EMR_ENDPOINT_TAGS = {"Name": "emr-service-vpce", "for-use-with-amazon-emr-managed-policies": "true"}


class SecurityGroupRuleRevoker(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, groups: list[ec2.SecurityGroup], vpc: ec2.IVpc
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        group_arns = [
            stack.format_arn(service="ec2", resource="security-group", resource_name=g.security_group_id)
            for g in groups
        ]
        endpoint_arns = stack.format_arn(service="ec2", resource="vpc-endpoint", resource_name="*")
        endpoint_tags = {f"aws:ResourceTag/{key}": value for key, value in EMR_ENDPOINT_TAGS.items()}
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Revokes the EMR security groups' rules when the stack is deleted",
            inline_policies={
                "RevokeEmrGroupRules": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="RevokeRules",
                            actions=["ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"],
                            resources=group_arns,
                        ),
                        # Describe* actions support no resource-level permissions.
                        iam.PolicyStatement(
                            sid="DescribeGroupsAndEndpoints",
                            actions=["ec2:DescribeSecurityGroups", "ec2:DescribeVpcEndpoints"],
                            resources=["*"],
                        ),
                        # Only endpoints carrying the tags EMR must put on the ones it creates.
                        iam.PolicyStatement(
                            sid="DeleteEmrServiceEndpoints",
                            actions=["ec2:DeleteVpcEndpoints"],
                            resources=[endpoint_arns],
                            conditions={"StringEquals": endpoint_tags},
                        ),
                        iam.PolicyStatement(
                            sid="ReadOwnStackStatus",
                            actions=["cloudformation:DescribeStacks"],
                            resources=[stack.stack_id],
                        ),
                        iam.PolicyStatement(
                            sid="WriteOwnLogs",
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[
                                stack.format_arn(
                                    service="logs",
                                    resource="log-group",
                                    resource_name=f"{log_group.log_group_name}:log-stream:*",
                                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                                )
                            ],
                        ),
                    ]
                )
            },
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ec2:DescribeSecurityGroups and ec2:DescribeVpcEndpoints support no resource-level "
                "permissions; the revoke actions are limited to the three EMR security groups",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:ec2:{stack.region}:<AWS::AccountId>:"
                "vpc-endpoint/*]",
                reason="the endpoint EMR creates gets its id at run time; deletion is limited by condition "
                "to endpoints tagged Name=emr-service-vpce and for-use-with-amazon-emr-managed-policies=true",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:logs:{stack.region}:<AWS::AccountId>:"
                f"log-group:<{stack.get_logical_id(log_group.node.default_child)}>:log-stream:*]",  # type: ignore[arg-type]
                reason="Lambda creates one log stream per execution environment, named at run time, in "
                "this function's own log group",
            ),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_asset(str(HANDLER_DIR), exclude=["__pycache__", "*.pyc"]),
            role=role,
            timeout=Duration.minutes(5),  # endpoint deletion is waited for (up to 4 minutes)
            memory_size=256,
            log_group=log_group,
            description="Delete-time cleanup (cdk destroy): EMR security group rules, EMR VPC endpoints",
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.function.function_arn,
            resource_type=RESOURCE_TYPE,
            properties={"GroupIds": [g.security_group_id for g in groups], "VpcId": vpc.vpc_id},
        )


def order_teardown(
    revoker: SecurityGroupRuleRevoker,
    rules: list[ec2.CfnSecurityGroupIngress | ec2.CfnSecurityGroupEgress],
    cluster: Construct,
) -> None:
    """cluster -> rules -> revoker -> groups (see the module docstring)."""
    for rule in rules:
        rule.node.add_dependency(revoker.resource)
        cluster.node.add_dependency(rule)
    cluster.node.add_dependency(revoker.resource)
