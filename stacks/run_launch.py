"""Runs after the deploy's, with no stack change: the published RunJobFlow request and the optional schedule.

The request is the cluster definition's second rendering (stacks/cluster.py), the run id left as
RUN_ID_PLACEHOLDER; it is published as an SSM parameter written by CloudFormation at deploy (no Lambda, no
object to keep in step with the stack), and `make run` (ops/run.py) fills in a new run id and calls
RunJobFlow with it. With `-c schedule=...`, an EventBridge Scheduler schedule calls the same request through
the universal target `aws-sdk:emr:runJobFlow`, the run id being `scheduled-<aws.scheduler.execution-id>`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk import Acknowledgment, Aws, Duration, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.cluster import ClusterDefinition
from stacks.run_contract import RUN_ID_PLACEHOLDER, SCHEDULED_RUN_ID, STACK_TAG

# Parameter Store's standard tier takes values up to 4 KB, the advanced tier (charged per parameter-month)
# up to 8 KB: https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html
# The request of the default cluster is about 5 KB once resolved (three fleets of five types, the Spark
# settings, eight S3 URLs): advanced. Checked at synth against a bound of the resolved size.
ADVANCED_TIER_MAX_CHARS = 8192
# What a deploy-time value in the request (a CDK token) can resolve to, at most: an S3 asset URL (117), a role
# ARN (95), the bucket name (63), the security configuration's generated name, subnet and group ids.
TOKEN_MAX_CHARS = 128
_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")
# A failed start (throttling, capacity) is retried twice within the hour, then left for the next schedule:
# Scheduler's default (185 retries over 24 h) could start a run a day late, over the next one.
SCHEDULE_RETRY_ATTEMPTS = 2
SCHEDULE_MAX_EVENT_AGE = Duration.hours(1)


def parameter_name(stack_name: str) -> str:
    return f"/{stack_name}/run-request"


class RunRequestTooLargeError(ValueError):
    """The request may not fit in an SSM parameter (the user's configuration made it so)."""


def resolved_size_bound(request: Any) -> int:
    """The most characters `request` can take once CloudFormation resolves it (compact JSON, as
    Stack.to_json_string writes it): each token counted at TOKEN_MAX_CHARS."""
    text = json.dumps(request, separators=(",", ":"))
    return len(_TOKEN.sub("x" * TOKEN_MAX_CHARS, text))


class RunLauncher(Construct):
    """The SSM parameter holding the RunJobFlow request; with `schedule`, the schedule and its role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: ClusterDefinition,
        service_role: iam.IRole,
        ec2_role: iam.IRole,
        schedule: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.request: dict[str, Any] = definition.run_job_flow_request(RUN_ID_PLACEHOLDER)
        bound = resolved_size_bound(self.request)
        if bound > ADVANCED_TIER_MAX_CHARS:
            raise RunRequestTooLargeError(
                f"the cluster's RunJobFlow request may take {bound} characters, more than an SSM parameter "
                f"holds ({ADVANCED_TIER_MAX_CHARS}): list fewer instanceTypes or shorten inputUri"
            )
        self.parameter = ssm.StringParameter(
            self,
            "RunRequest",
            parameter_name=parameter_name(stack.stack_name),
            string_value=stack.to_json_string(self.request),
            tier=ssm.ParameterTier.ADVANCED,
            description=f"EMR RunJobFlow request of a {stack.stack_name} run ({RUN_ID_PLACEHOLDER}: the run "
            "id); read by `make run`",
        )
        self.schedule: scheduler.Schedule | None = None
        if schedule is not None:
            self.scheduled_request = definition.run_job_flow_request(SCHEDULED_RUN_ID)
            self.schedule = self._schedule(schedule, service_role, ec2_role)

    def _schedule(self, expression: str, service_role: iam.IRole, ec2_role: iam.IRole) -> scheduler.Schedule:
        stack = Stack.of(self)
        # Trust Scheduler acting for this account's default schedule group only (confused-deputy protection):
        # https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role
        self.role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": Aws.ACCOUNT_ID,
                        "aws:SourceArn": stack.format_arn(
                            service="scheduler", resource="schedule-group", resource_name="default"
                        ),
                    }
                },
            ),
            description=f"EventBridge Scheduler: start {stack.stack_name} runs (RunJobFlow) on the schedule",
        )
        clusters = stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")
        # RunJobFlow has no resource type (Resource "*"): it is limited to clusters tagged as this stack's.
        # Creating a tagged cluster also needs elasticmapreduce:AddTags, and the two roles are passed, the
        # service role to EMR and the instance role to EC2:
        # https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-fine-grained-cluster-access.html
        statements = [
            iam.PolicyStatement(
                sid="StartRunClusters",
                actions=["elasticmapreduce:RunJobFlow"],
                resources=["*"],
                conditions={"StringEquals": {f"aws:RequestTag/{STACK_TAG}": stack.stack_name}},
            ),
            iam.PolicyStatement(
                sid="TagRunClusters",
                actions=["elasticmapreduce:AddTags"],
                resources=[clusters],
                conditions={"StringEquals": {f"elasticmapreduce:ResourceTag/{STACK_TAG}": stack.stack_name}},
            ),
            iam.PolicyStatement(
                sid="PassServiceRole",
                actions=["iam:PassRole"],
                resources=[service_role.role_arn],
                conditions={"StringLike": {"iam:PassedToService": "elasticmapreduce.amazonaws.com*"}},
            ),
            iam.PolicyStatement(
                sid="PassInstanceRole",
                actions=["iam:PassRole"],
                resources=[ec2_role.role_arn],
                conditions={"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}},
            ),
        ]
        target = targets.Universal(
            service="emr",
            action="runJobFlow",
            input=scheduler.ScheduleTargetInput.from_object(self.scheduled_request),
            role=self.role,
            policy_statements=statements,
            retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
            max_event_age=SCHEDULE_MAX_EVENT_AGE,
        )
        schedule = scheduler.Schedule(
            self,
            "Schedule",
            schedule=scheduler.ScheduleExpression.expression(expression),
            target=target,
            schedule_name=f"{stack.stack_name}-runs",
            description=f"Starts a {stack.stack_name} run (a transient EMR cluster): {expression}, UTC",
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="elasticmapreduce:RunJobFlow supports no resource-level permission; the statement "
                f"allows it only for a cluster created with the tag {STACK_TAG}={stack.stack_name}",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:elasticmapreduce:{stack.region}:"
                "<AWS::AccountId>:cluster/*]",
                reason="tagging a cluster at creation needs elasticmapreduce:AddTags on it, and its id "
                f"exists only then; limited to clusters tagged {STACK_TAG}={stack.stack_name}",
            ),
        )
        return schedule
