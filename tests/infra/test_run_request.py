"""The published RunJobFlow request (stacks/run_launch.py): the stack's own cluster, in EMR's API shape.

- Field by field, the request equals the synthesized AWS::EMR::Cluster mapped to RunJobFlow's member names by
  an independent table here (fleets and configuration properties are the only members named otherwise), so
  the two renderings of the one definition cannot drift.
- botocore's own service model validates it as an `emr` RunJobFlow input (ParamValidator, no AWS call).
- The schedule (-c schedule) sends the same request, its run id left to EventBridge Scheduler, with a role
  that can do nothing else.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from aws_cdk.assertions import Template
from botocore.validate import ParamValidator

from stacks.run_contract import (
    MANUAL_RUN_PREFIX,
    RUN_ID_PLACEHOLDER,
    RUN_ID_TAG,
    SCHEDULED_RUN_ID,
    STACK_TAG,
    with_run_id,
)
from stacks.run_launch import (
    ADVANCED_TIER_MAX_CHARS,
    RunRequestTooLargeError,
    parameter_name,
    resolved_size_bound,
)
from tests.cfn_template import render
from tests.infra.conftest import Synth, build_app, only
from tests.runtime_support import ensure_wheelhouse

EMR_TAG = {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}
# Every fleet, five types each, a Spot task fleet of two sizes, an external input: the largest request.
LARGEST = {
    "taskCapacity": "6",
    "instanceTypes": json.dumps(
        {"core": ["m5.2xlarge", "m6i.2xlarge", "m5.4xlarge", "m6i.4xlarge", "m7i.4xlarge"]}
    ),
    "components": "224",
    "inputUri": "s3://an-input-bucket-with-a-long-name-for-the-size-test/fruits-360/2026/all-the-photos",
    "schedule": "cron(0 3 * * ? *)",
}
VARIANTS = {
    "default": {},
    "largest": LARGEST,
    "on-demand-task-arm64-nat": {
        "architecture": "arm64",
        "taskCapacity": "2",
        "taskMarket": "on-demand",
        "egress": "nat",
        "schedule": "rate(1 day)",
    },
    # The LTS line: its label, applications and configurations in both renderings.
    "emr-spark-8.1.0": {"releaseLabel": "emr-spark-8.1.0", "taskCapacity": "2"},
}
# Stand-ins for what CloudFormation resolves at deploy, as long as the real values can be.
DEPLOY_VALUES = [
    (r"FruitsData\.BucketName", "fruitsdata-databucketd8691f4e-0123456789ab"),
    (r"AWS::AccountId", "123456789012"),
    (r"NetworkVpcEmrSubnet\d\w+", "subnet-0123456789abcdef0"),
    (r"SecurityGroups\w+\.GroupId", "sg-0123456789abcdef0"),
    (
        r"AccessServiceRole\w+\.Arn",
        "arn:aws:iam::123456789012:role/FruitsPipeline-AccessServiceRole6A3BD393-Ab1Cd2Ef3Gh4",
    ),
    (r"AccessEc2InstanceProfile\w+", "FruitsPipeline-AccessEc2Role36F6DA1F-Ij5Kl6Mn7Op8"),
    (r"Encryption\w+", "EncryptionB687BDBB-Qr9St0Uv1Wx2"),
]
# RunJobFlow's names for CloudFormation's: the only members named otherwise
# (https://docs.aws.amazon.com/emr/latest/APIReference/API_RunJobFlow.html,
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-emr-cluster.html).
RENAMED = {"ConfigurationProperties": "Properties", "StepProperties": "Properties"}
FLEETS = {"MasterInstanceFleet": "MASTER", "CoreInstanceFleet": "CORE", "TaskInstanceFleets": "TASK"}


@pytest.fixture(scope="module")
def synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    synths = {}
    for name, overrides in VARIANTS.items():
        if overrides.get("architecture") == "arm64":
            overrides = {**overrides, "wheelhouseDir": str(ensure_wheelhouse("aarch64"))}
        synths[name] = build_app(tmp_path_factory.mktemp(name), overrides)
    return synths


def joined(value: Any) -> str:
    """A Fn::Join-of-JSON template value as text, each intrinsic rendered as ${...} (tests/cfn_template)."""
    if isinstance(value, str):
        return value
    separator, parts = value["Fn::Join"]
    return separator.join(part if isinstance(part, str) else str(render(part)) for part in parts)


def published(template: Template) -> dict[str, Any]:
    """The request in the SSM parameter, run id left as RUN_ID_PLACEHOLDER."""
    return json.loads(joined(only(template, "AWS::SSM::Parameter")[1]["Properties"]["Value"]))


def deployed(text: str) -> str:
    """Rendered text with each ${...} replaced by a value as CloudFormation would resolve it."""

    def value(match: re.Match[str]) -> str:
        for pattern, stand_in in DEPLOY_VALUES:
            if re.fullmatch(pattern, match.group(1)):
                return stand_in
        raise AssertionError(f"no stand-in for ${{{match.group(1)}}}: add one to DEPLOY_VALUES")

    return re.sub(r"\$\{([^}]+)\}", value, text)


def as_run_job_flow(cluster: dict[str, Any]) -> dict[str, Any]:
    """AWS::EMR::Cluster properties under RunJobFlow's member names (this test's own mapping)."""

    def rename(node: Any) -> Any:
        if isinstance(node, list):
            return [rename(item) for item in node]
        if isinstance(node, dict):
            return {RENAMED.get(key, key): rename(value) for key, value in node.items()}
        return node

    request = rename(copy.deepcopy(cluster))
    instances = request["Instances"]
    fleets = []
    for key, fleet_type in FLEETS.items():
        found = instances.pop(key, [])
        for fleet in [found] if isinstance(found, dict) else found:
            fleets.append({**fleet, "InstanceFleetType": fleet_type})
    instances["InstanceFleets"] = fleets
    return request


def run_job_flow_errors(request: dict[str, Any]) -> str:
    """botocore's validation of `request` as the input of emr RunJobFlow ('' when valid); no AWS call."""
    model = botocore.session.get_session().get_service_model("emr")
    report = ParamValidator().validate(request, model.operation_model("RunJobFlow").input_shape)
    return report.generate_report()


@pytest.mark.parametrize("name", VARIANTS)
def test_the_published_request_is_the_synthesized_cluster_field_by_field(synths: dict[str, Synth], name: str):
    synth = synths[name]
    template = synth.pipeline
    cluster = render(only(template, "AWS::EMR::Cluster")[1]["Properties"])
    request = with_run_id(published(template), synth.stacks.pipeline.run_id)
    expected = as_run_job_flow(cluster)
    assert set(request) == set(expected)
    for member in sorted(expected):  # one assertion per member: a drift names its field
        assert request[member] == expected[member], member


@pytest.mark.parametrize("name", VARIANTS)
def test_botocore_validates_the_published_request_as_a_run_job_flow_input(
    synths: dict[str, Synth], name: str
):
    text = deployed(joined(only(synths[name].pipeline, "AWS::SSM::Parameter")[1]["Properties"]["Value"]))
    request = with_run_id(json.loads(text), MANUAL_RUN_PREFIX + "20261207-031205-a1b2")
    assert run_job_flow_errors(request) == ""
    assert request["Instances"]["InstanceFleets"][0]["InstanceFleetType"] == "MASTER"
    assert request["ReleaseLabel"] == VARIANTS[name].get("releaseLabel", "emr-7.14.0")
    assert request["Applications"] == [{"Name": "Spark"}]
    # The validator has teeth: CloudFormation's name for a configuration's properties is refused.
    wrong = copy.deepcopy(request)
    wrong["Configurations"][0]["ConfigurationProperties"] = wrong["Configurations"][0].pop("Configurations")
    assert 'Unknown parameter in Configurations[0]: "ConfigurationProperties"' in run_job_flow_errors(wrong)


@pytest.mark.parametrize("name", VARIANTS)
def test_the_request_fits_the_advanced_ssm_tier(synths: dict[str, Synth], name: str):
    template = synths[name].pipeline
    properties = only(template, "AWS::SSM::Parameter")[1]["Properties"]
    assert properties["Tier"] == "Advanced"
    assert properties["Name"] == parameter_name("FruitsPipeline") == "/FruitsPipeline/run-request"
    resolved = deployed(joined(properties["Value"]))
    bound = resolved_size_bound(synths[name].stacks.pipeline.node.find_child("Runs").request)  # type: ignore[attr-defined]
    assert 4096 < len(resolved) <= bound <= ADVANCED_TIER_MAX_CHARS, "over the standard tier's 4 KB"


def test_a_request_too_large_for_ssm_fails_synth_with_what_to_change(tmp_path: Path):
    too_long = "s3://input-bucket/" + "/".join(["a-very-long-folder-name-of-photos"] * 120)
    with pytest.raises(RunRequestTooLargeError, match="list fewer instanceTypes or shorten inputUri"):
        build_app(tmp_path, {"inputUri": too_long})


def test_every_run_cluster_is_named_and_tagged_with_its_run_id(synths: dict[str, Synth]):
    request = published(synths["default"].pipeline)
    assert request["Name"] == f"fruits-pipeline-{RUN_ID_PLACEHOLDER}"
    assert request["Tags"] == [
        EMR_TAG,  # AmazonEMRServicePolicy_v2 acts only on tagged clusters
        {"Key": RUN_ID_TAG, "Value": RUN_ID_PLACEHOLDER},
        {"Key": STACK_TAG, "Value": "FruitsPipeline"},
    ]
    fit, transform = (step["HadoopJarStep"]["Args"] for step in request["Steps"])
    run = f"s3://${{FruitsData.BucketName}}/runs/{RUN_ID_PLACEHOLDER}"
    assert fit[fit.index("--output") + 1] == f"{run}/fit"
    assert transform[transform.index("--model") + 1] == f"{run}/fit/model"
    assert transform[transform.index("--output") + 1] == f"{run}/transform"
    # the placeholder is nowhere else: a run differs from another by its id only
    text = json.dumps(request)
    assert text.count(RUN_ID_PLACEHOLDER) == 5


def test_no_schedule_by_default(synths: dict[str, Synth]):
    template = synths["default"].pipeline
    template.resource_count_is("AWS::Scheduler::Schedule", 0)
    assert not [r for r in template.find_resources("AWS::IAM::Role") if r.startswith("RunsScheduler")]


@pytest.mark.parametrize(
    ("name", "expression"), [("largest", "cron(0 3 * * ? *)"), ("on-demand-task-arm64-nat", "rate(1 day)")]
)
def test_the_schedule_starts_the_published_request_with_a_scheduler_run_id(
    synths: dict[str, Synth], name: str, expression: str
):
    template = synths[name].pipeline
    _, schedule = only(template, "AWS::Scheduler::Schedule")
    properties = schedule["Properties"]
    assert properties["ScheduleExpression"] == expression
    assert properties["ScheduleExpressionTimezone"] == "Etc/UTC"
    assert properties["State"] == "ENABLED"
    assert properties["Name"] == "FruitsPipeline-runs"
    target = properties["Target"]
    assert render(target["Arn"]) == "arn:${AWS::Partition}:scheduler:::aws-sdk:emr:runJobFlow"
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}
    scheduled = json.loads(joined(target["Input"]))
    assert scheduled == with_run_id(published(template), SCHEDULED_RUN_ID)
    assert scheduled["Name"] == "fruits-pipeline-scheduled-<aws.scheduler.execution-id>"
    # Created after, and deleted before, what a run needs, as the deploy's cluster is: roles' policies,
    # endpoints, security group rules and the rule revoker (so no run starts while `make destroy` runs).
    assert set(schedule["DependsOn"]) == set(only(template, "AWS::EMR::Cluster")[1]["DependsOn"])
    assert any(d.startswith("SgRuleRevoker") for d in schedule["DependsOn"])
    outputs = template.to_json()["Outputs"]
    assert outputs["RunSchedule"]["Value"] == {"Ref": only(template, "AWS::Scheduler::Schedule")[0]}


def test_the_scheduler_role_can_start_this_stack_runs_and_nothing_else(synths: dict[str, Synth]):
    template = synths["largest"].pipeline
    roles = template.find_resources("AWS::IAM::Role")
    (role_id,) = [r for r in roles if r.startswith("RunsSchedulerRole")]
    (trust,) = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert render(trust) == {
        "Action": "sts:AssumeRole",
        "Effect": "Allow",
        "Principal": {"Service": "scheduler.amazonaws.com"},
        "Condition": {
            "StringEquals": {
                "aws:SourceAccount": "${AWS::AccountId}",
                "aws:SourceArn": "arn:aws:scheduler:eu-west-3:${AWS::AccountId}:schedule-group/default",
            }
        },
    }
    policies = [
        p for p in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]  # fmt: skip
    assert len(policies) == 1
    assert not [
        p for p in template.find_resources("AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in p["Properties"].get("Roles", [])
    ]  # fmt: skip
    assert "ManagedPolicyArns" not in roles[role_id]["Properties"]
    statements = {s.pop("Sid"): s for s in render(policies[0]["Properties"]["PolicyDocument"]["Statement"])}
    service_role = only_role(roles, "AccessServiceRole")
    ec2_role = only_role(roles, "AccessEc2Role")
    assert statements == {
        "StartRunClusters": {
            "Action": "elasticmapreduce:RunJobFlow",
            "Effect": "Allow",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestTag/fruits-pipeline:stack": "FruitsPipeline"}},
        },
        "TagRunClusters": {
            "Action": "elasticmapreduce:AddTags",
            "Effect": "Allow",
            "Resource": "arn:aws:elasticmapreduce:eu-west-3:${AWS::AccountId}:cluster/*",
            "Condition": {
                "StringEquals": {"elasticmapreduce:ResourceTag/fruits-pipeline:stack": "FruitsPipeline"}
            },
        },
        "PassServiceRole": {
            "Action": "iam:PassRole",
            "Effect": "Allow",
            "Resource": f"${{{service_role}.Arn}}",
            "Condition": {"StringLike": {"iam:PassedToService": "elasticmapreduce.amazonaws.com*"}},
        },
        "PassInstanceRole": {
            "Action": "iam:PassRole",
            "Effect": "Allow",
            "Resource": f"${{{ec2_role}.Arn}}",
            "Condition": {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}},
        },
    }
    # The request's JobFlowRole is the instance profile of exactly that EC2 role, its ServiceRole that role.
    request = published(template)
    assert request["ServiceRole"] == f"${{{service_role}.Arn}}"
    profile_id, profile = only(template, "AWS::IAM::InstanceProfile")
    assert request["JobFlowRole"] == f"${{{profile_id}}}"
    assert profile["Properties"]["Roles"] == [{"Ref": ec2_role}]
    # the schedule's stack tag condition holds for what it sends
    assert {"Key": STACK_TAG, "Value": "FruitsPipeline"} in request["Tags"]


def only_role(roles: dict[str, Any], prefix: str) -> str:
    (found,) = [r for r in roles if r.startswith(prefix)]
    return found
