"""The revoker's Lambda handler, with boto3 against moto's EC2 and botocore Stubbers."""

from __future__ import annotations

import importlib.util
import io
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from stacks.sg_rule_revoker import HANDLER_DIR

REGION = "eu-west-3"
STACK_ID = "arn:aws:cloudformation:eu-west-3:123456789012:stack/FruitsPipeline/1f2e3d4c"


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sg_revoker_index", HANDLER_DIR / "index.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


index = load_handler()


def event(request: str, group_ids: list[str], vpc_id: str | None = None) -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResponseURL": "https://cloudformation-custom-resource-response-euwest3.s3.amazonaws.com/signed",
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "SgRuleRevokerF042A7B3",
        "ResourceType": "Custom::SecurityGroupRuleRevoker",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:...",
            "GroupIds": group_ids,
            **({"VpcId": vpc_id} if vpc_id else {}),
        },
        **({"PhysicalResourceId": "SgRuleRevokerF042A7B3-sg-rule-revoker"} if request != "Create" else {}),
    }


def stack_status(status: str) -> tuple[Any, Stubber]:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "FruitsPipeline",
                    "StackId": STACK_ID,
                    "CreationTime": "2026-11-21T06:00:00Z",
                    "StackStatus": status,
                }
            ]
        },
        {"StackName": STACK_ID},
    )
    stubber.activate()
    return cloudformation, stubber


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


class EmrGroups:
    """Primary, core and service-access groups cross-referencing each other, as EMR leaves them, and a
    bystander group the revoker must not touch."""

    def __init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name=REGION)
        vpc = self.ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        self.ids = {
            name: self.ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
            for name in ("primary", "core", "service-access", "bystander")
        }
        primary, core, service = self.ids["primary"], self.ids["core"], self.ids["service-access"]
        for target in (primary, core):
            for source in (primary, core):
                self.allow(target, source, "-1")
            self.allow(target, service, "tcp", 8443)
        self.allow(service, primary, "tcp", 9443)
        for target in (primary, core):
            self.ec2.authorize_security_group_egress(
                GroupId=service,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 8443,
                        "ToPort": 8443,
                        "UserIdGroupPairs": [{"GroupId": target}],
                    }
                ],
            )
        self.allow(self.ids["bystander"], primary, "tcp", 443)

    def allow(self, target: str, source: str, protocol: str, port: int | None = None) -> None:
        permission: dict[str, Any] = {"IpProtocol": protocol, "UserIdGroupPairs": [{"GroupId": source}]}
        if port is not None:
            permission |= {"FromPort": port, "ToPort": port}
        self.ec2.authorize_security_group_ingress(GroupId=target, IpPermissions=[permission])

    @property
    def emr(self) -> list[str]:
        return [self.ids[n] for n in ("primary", "core", "service-access")]

    def group(self, group_id: str) -> dict[str, Any]:
        return self.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]

    def references(self, group_id: str) -> set[str]:
        group = self.group(group_id)
        return {
            pair["GroupId"]
            for permission in group["IpPermissions"] + group["IpPermissionsEgress"]
            for pair in permission.get("UserIdGroupPairs", [])
        }


def test_delete_during_stack_deletion_revokes_every_rule(aws: None):
    groups = EmrGroups()
    assert groups.references(groups.ids["primary"]) == set(
        groups.ids[n] for n in ("primary", "core", "service-access")
    )
    cloudformation, stubber = stack_status("DELETE_IN_PROGRESS")

    data = index.handle(event("Delete", groups.emr), groups.ec2, cloudformation)

    stubber.assert_no_pending_responses()
    for group_id in groups.emr:
        group = groups.group(group_id)
        assert group["IpPermissions"] == []
        assert group["IpPermissionsEgress"] == []
    assert data["Revoked"] >= 9  # moto may merge permissions; at least one per protocol/port pair
    # nothing references the EMR groups any more (what EC2 requires to delete them), then they go
    assert groups.ids["primary"] in groups.references(groups.ids["bystander"])  # not ours: untouched
    groups.ec2.delete_security_group(GroupId=groups.ids["bystander"])
    for group_id in groups.emr:
        groups.ec2.delete_security_group(GroupId=group_id)
    remaining = {g["GroupId"] for g in groups.ec2.describe_security_groups()["SecurityGroups"]}
    assert remaining.isdisjoint(groups.ids.values())


def test_delete_during_create_rollback_revokes_too(aws: None):
    groups = EmrGroups()
    cloudformation, _ = stack_status("ROLLBACK_IN_PROGRESS")
    index.handle(event("Delete", groups.emr), groups.ec2, cloudformation)
    assert all(groups.references(g) == set() for g in groups.emr)


@pytest.mark.parametrize(
    "status", ["UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"]
)
def test_delete_by_an_update_leaves_the_live_groups_alone(aws: None, status: str):
    groups = EmrGroups()
    before = {g: groups.references(g) for g in groups.emr}
    cloudformation, stubber = stack_status(status)
    assert index.handle(event("Delete", groups.emr), groups.ec2, cloudformation) == {
        "Revoked": 0,
        "EndpointsDeleted": 0,
    }
    stubber.assert_no_pending_responses()
    assert {g: groups.references(g) for g in groups.emr} == before


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_make_no_aws_call(request_type: str):
    ec2 = boto3.client("ec2", region_name=REGION)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    with Stubber(ec2) as ec2_stub, Stubber(cloudformation) as cfn_stub:  # any call would fail
        assert index.handle(event(request_type, ["sg-0123456789abcdef0"]), ec2, cloudformation) == {
            "Revoked": 0,
            "EndpointsDeleted": 0,
        }
        ec2_stub.assert_no_pending_responses()
        cfn_stub.assert_no_pending_responses()


def test_groups_already_gone_are_not_an_error(aws: None):
    groups = EmrGroups()
    gone = groups.ids["service-access"]
    for other in (groups.ids["primary"], groups.ids["core"]):  # drop what references it, then the group
        group = groups.group(other)
        groups.ec2.revoke_security_group_ingress(GroupId=other, IpPermissions=group["IpPermissions"])
    groups.ec2.revoke_security_group_egress(
        GroupId=gone, IpPermissions=groups.group(gone)["IpPermissionsEgress"]
    )
    groups.ec2.delete_security_group(GroupId=gone)
    revoked = index.revoke_group_rules(groups.ec2, groups.emr)
    assert revoked[gone] == 0
    assert all(groups.references(g) == set() for g in groups.emr if g != gone)


def test_one_call_per_permission_and_rules_already_gone_are_skipped():
    ec2 = boto3.client("ec2", region_name=REGION)
    ingress = [
        {
            "IpProtocol": "-1",
            "UserIdGroupPairs": [{"GroupId": "sg-0000000000000000a", "UserId": "123456789012"}],
        },
        {
            "IpProtocol": "tcp",
            "FromPort": 8443,
            "ToPort": 8443,
            "UserIdGroupPairs": [{"GroupId": "sg-0000000000000000c"}],
        },
    ]
    egress = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_security_groups",
            {
                "SecurityGroups": [
                    {
                        "GroupId": "sg-0000000000000000a",
                        "IpPermissions": ingress,
                        "IpPermissionsEgress": egress,
                    }
                ]
            },
            {"GroupIds": ["sg-0000000000000000a"]},
        )
        stub.add_response(
            "revoke_security_group_ingress",
            {"Return": True},
            {"GroupId": "sg-0000000000000000a", "IpPermissions": [ingress[0]]},
        )
        stub.add_client_error(
            "revoke_security_group_ingress",
            "InvalidPermission.NotFound",
            expected_params={"GroupId": "sg-0000000000000000a", "IpPermissions": [ingress[1]]},
        )
        stub.add_response(
            "revoke_security_group_egress",
            {"Return": True},
            {"GroupId": "sg-0000000000000000a", "IpPermissions": egress},
        )
        assert index.revoke_group_rules(ec2, ["sg-0000000000000000a"]) == {"sg-0000000000000000a": 2}
        stub.assert_no_pending_responses()


def test_other_errors_propagate():
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as stub:
        stub.add_client_error("describe_security_groups", "UnauthorizedOperation", http_status_code=403)
        with pytest.raises(index.ClientError, match="UnauthorizedOperation"):
            index.revoke_group_rules(ec2, ["sg-0000000000000000a"])


class FakeResponse(io.BytesIO):
    status = 200

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    requests: list[Any] = []

    def urlopen(request: Any, timeout: float) -> FakeResponse:
        requests.append(request)
        return FakeResponse(b"")

    monkeypatch.setattr(index.urllib.request, "urlopen", urlopen)
    return requests


def test_handler_answers_success_to_cloudformation(
    aws: None, sent: list[Any], monkeypatch: pytest.MonkeyPatch
):
    groups = EmrGroups()
    cloudformation, _ = stack_status("DELETE_IN_PROGRESS")
    clients = {"ec2": groups.ec2, "cloudformation": cloudformation}
    monkeypatch.setattr(index.boto3, "client", lambda name: clients[name])

    index.handler(event("Delete", groups.emr), None)

    (request,) = sent
    assert request.get_method() == "PUT"
    assert request.full_url == event("Delete", [])["ResponseURL"]
    assert request.get_header("Content-type") == ""
    body = json.loads(request.data)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == "SgRuleRevokerF042A7B3-sg-rule-revoker"
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        STACK_ID,
        "req-1",
        "SgRuleRevokerF042A7B3",
    )
    assert body["Data"]["Revoked"] >= 9
    assert all(groups.references(g) == set() for g in groups.emr)


def test_handler_answers_failed_instead_of_leaving_cloudformation_waiting(
    sent: list[Any], monkeypatch: pytest.MonkeyPatch
):
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stub = Stubber(cloudformation)
    stub.add_client_error("describe_stacks", "AccessDenied", "not allowed", http_status_code=403)
    stub.activate()
    monkeypatch.setattr(
        index.boto3, "client", lambda name: cloudformation if name == "cloudformation" else None
    )

    index.handler(event("Delete", ["sg-0000000000000000a"]), None)

    (request,) = sent
    body = json.loads(request.data)
    assert body["Status"] == "FAILED"
    assert "AccessDenied" in body["Reason"]
    assert body["PhysicalResourceId"] == "SgRuleRevokerF042A7B3-sg-rule-revoker"


def test_create_answers_with_a_stable_physical_id(sent: list[Any], monkeypatch: pytest.MonkeyPatch):
    make_client = boto3.client
    monkeypatch.setattr(index.boto3, "client", lambda name: make_client(name, region_name=REGION))
    index.handler(event("Create", ["sg-0000000000000000a"]), None)
    body = json.loads(sent[0].data)
    assert (body["Status"], body["PhysicalResourceId"]) == (
        "SUCCESS",
        "SgRuleRevokerF042A7B3-sg-rule-revoker",
    )


# --- VPC endpoints EMR creates (AmazonEMRServicePolicy_v2 v6: CreateEmrServiceVPCEndpoint) ---------------


def tags(**pairs: str) -> list[dict[str, Any]]:
    return [{"ResourceType": "vpc-endpoint", "Tags": [{"Key": k, "Value": v} for k, v in pairs.items()]}]


EMR_TAGS = {"Name": "emr-service-vpce", "for-use-with-amazon-emr-managed-policies": "true"}


def live_endpoints(ec2: Any, vpc_id: str) -> set[str]:
    found = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
    return {e["VpcEndpointId"] for e in found if e["State"].lower() != "deleted"}


def test_stack_deletion_deletes_the_endpoints_emr_created_in_our_vpc_only(aws: None):
    groups = EmrGroups()
    ec2 = groups.ec2
    ours = ec2.describe_security_groups(GroupIds=[groups.ids["primary"]])["SecurityGroups"][0]["VpcId"]
    other = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    service = f"com.amazonaws.{REGION}.elasticmapreduce"

    def endpoint(vpc: str, **pairs: str) -> str:
        made = ec2.create_vpc_endpoint(
            VpcId=vpc, ServiceName=service, VpcEndpointType="Interface", TagSpecifications=tags(**pairs)
        )
        return made["VpcEndpoint"]["VpcEndpointId"]

    emrs = endpoint(ours, **EMR_TAGS)
    named_only = endpoint(ours, Name="emr-service-vpce")  # not EMR's: it lacks the managed-policy tag
    mine = endpoint(ours, Name="kms")
    elsewhere = endpoint(other, **EMR_TAGS)  # EMR's, but another VPC's
    cloudformation, _ = stack_status("DELETE_IN_PROGRESS")

    data = index.handle(event("Delete", groups.emr, vpc_id=ours), ec2, cloudformation)

    assert data["EndpointsDeleted"] == 1
    assert live_endpoints(ec2, ours) == {named_only, mine}
    assert emrs not in live_endpoints(ec2, ours)
    assert live_endpoints(ec2, other) == {elsewhere}
    assert all(groups.references(g) == set() for g in groups.emr)  # the rules went too


EMR8_SERVICE = f"aws.api.{REGION}.emr-service-cell01"  # the 8.0.0 release notes' endpoint service


def test_stack_deletion_deletes_emr_8s_service_endpoint_in_our_vpc(aws: None):
    """emr-spark-8.x: the endpoint EMR provisions to its service (tagged, as the service role's policies make
    it be) goes like 7.x's; an endpoint of our own to another service stays."""
    groups = EmrGroups()
    ec2 = groups.ec2
    ours = groups.group(groups.ids["service-access"])["VpcId"]
    emr = ec2.create_vpc_endpoint(
        VpcId=ours,
        ServiceName=EMR8_SERVICE,
        VpcEndpointType="Interface",
        SecurityGroupIds=[groups.ids["service-access"]],
        TagSpecifications=tags(**EMR_TAGS),
    )["VpcEndpoint"]["VpcEndpointId"]
    kms = ec2.create_vpc_endpoint(
        VpcId=ours, ServiceName=f"com.amazonaws.{REGION}.kms", VpcEndpointType="Interface"
    )["VpcEndpoint"]["VpcEndpointId"]
    cloudformation, _ = stack_status("DELETE_IN_PROGRESS")

    data = index.handle(event("Delete", groups.emr, vpc_id=ours), ec2, cloudformation)

    assert data["EndpointsDeleted"] == 1
    assert live_endpoints(ec2, ours) == {kms}
    assert emr not in live_endpoints(ec2, ours)


def test_an_untagged_emr_service_endpoint_fails_the_delete_naming_it_and_the_command(aws: None):
    """The revoker may delete tagged endpoints only: one to EMR's service without the tags (the tags EMR 8
    puts on its endpoint are not known offline) fails the Delete with its id and how to delete it, after
    the tagged ones and the rules are gone, instead of a DependencyViolation on the VPC later."""
    groups = EmrGroups()
    ec2 = groups.ec2
    ours = groups.group(groups.ids["service-access"])["VpcId"]

    def endpoint(**pairs: str) -> str:
        made = ec2.create_vpc_endpoint(
            VpcId=ours, ServiceName=EMR8_SERVICE, VpcEndpointType="Interface", TagSpecifications=tags(**pairs)
        )
        return made["VpcEndpoint"]["VpcEndpointId"]

    tagged = endpoint(**EMR_TAGS)
    stray = endpoint(Name="emr-service-vpce")  # lacks the managed-policy tag
    cloudformation, _ = stack_status("DELETE_IN_PROGRESS")

    with pytest.raises(RuntimeError) as caught:
        index.handle(event("Delete", groups.emr, vpc_id=ours), ec2, cloudformation)

    assert f"aws ec2 delete-vpc-endpoints --vpc-endpoint-ids {stray}" in str(caught.value)
    assert f"without the tags {EMR_TAGS}" in str(caught.value)
    assert live_endpoints(ec2, ours) == {stray}
    assert tagged not in live_endpoints(ec2, ours)
    assert all(groups.references(g) == set() for g in groups.emr)


def described(*states: str) -> dict[str, Any]:
    return {
        "VpcEndpoints": [
            {"VpcEndpointId": f"vpce-0{i}", "VpcId": "vpc-1", "State": s} for i, s in enumerate(states)
        ]
    }


FILTERS = [
    {"Name": "vpc-id", "Values": ["vpc-1"]},
    {"Name": "tag:Name", "Values": ["emr-service-vpce"]},
    {"Name": "tag:for-use-with-amazon-emr-managed-policies", "Values": ["true"]},
]


def test_deletion_is_waited_for_until_the_endpoint_is_gone():
    ec2 = boto3.client("ec2", region_name=REGION)
    sleeps: list[float] = []
    with Stubber(ec2) as stub:
        stub.add_response("describe_vpc_endpoints", described("available"), {"Filters": FILTERS})
        stub.add_response("delete_vpc_endpoints", {"Unsuccessful": []}, {"VpcEndpointIds": ["vpce-00"]})
        stub.add_response("describe_vpc_endpoints", described("deleting"), {"Filters": FILTERS})
        stub.add_response("describe_vpc_endpoints", described("deleted"), {"Filters": FILTERS})
        deleted = index.delete_emr_endpoints(ec2, "vpc-1", clock=lambda: 0.0, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert deleted == ["vpce-00"]
    assert sleeps == [index.ENDPOINT_POLL_S]  # one wait while it was deleting, none once deleted


def test_an_endpoint_that_does_not_go_fails_with_its_id():
    ec2 = boto3.client("ec2", region_name=REGION)
    now = iter([0.0, 100.0, 300.0])
    with Stubber(ec2) as stub:
        stub.add_response("describe_vpc_endpoints", described("available"), {"Filters": FILTERS})
        stub.add_response("delete_vpc_endpoints", {"Unsuccessful": []}, {"VpcEndpointIds": ["vpce-00"]})
        stub.add_response("describe_vpc_endpoints", described("deleting"), {"Filters": FILTERS})
        stub.add_response("describe_vpc_endpoints", described("deleting"), {"Filters": FILTERS})
        with pytest.raises(TimeoutError, match=r"still present after 240 s: \['vpce-00'\]"):
            index.delete_emr_endpoints(ec2, "vpc-1", clock=lambda: next(now), sleep=lambda _: None)


def test_a_refused_deletion_is_an_error():
    ec2 = boto3.client("ec2", region_name=REGION)
    refused = {"Unsuccessful": [{"ResourceId": "vpce-00", "Error": {"Code": "UnauthorizedOperation"}}]}
    with Stubber(ec2) as stub:
        stub.add_response("describe_vpc_endpoints", described("available"), {"Filters": FILTERS})
        stub.add_response("delete_vpc_endpoints", refused, {"VpcEndpointIds": ["vpce-00"]})
        with pytest.raises(RuntimeError, match="could not delete VPC endpoint vpce-00"):
            index.delete_emr_endpoints(ec2, "vpc-1", sleep=lambda _: None)
