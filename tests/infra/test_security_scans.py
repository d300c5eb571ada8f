"""Scans over every synthesized template (defaults and a variant with every optional feature on):
no security group admits 0.0.0.0/0 or ::/0, no IAM statement allows Action "*"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.conftest import build_app

OPEN_IPV4 = "0.0.0.0/0"
OPEN_IPV6 = "::/0"


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    upload = tmp_path_factory.mktemp("upload")
    (upload / "Test").mkdir()
    (upload / "Test" / "a.jpg").write_bytes(b"\xff\xd8")
    variant = {
        "retainData": "false",
        "uploadDir": str(upload),
        "inputUri": "s3://other-bucket/fruits",
        "weights": "s3://models-bucket/mobilenet.h5",
        "components": "50",
    }
    result = {}
    for name, overrides in (("default", {}), ("variant", variant)):
        synth = build_app(tmp_path_factory.mktemp(name), overrides)
        result[f"{name}/FruitsData"] = synth.data.to_json()
        result[f"{name}/FruitsPipeline"] = synth.pipeline.to_json()
    return result


def ingress_rules(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            for rule in resource["Properties"].get("SecurityGroupIngress", []):
                yield logical_id, rule
        elif resource["Type"] == "AWS::EC2::SecurityGroupIngress":
            yield logical_id, resource["Properties"]


def egress_rules(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            for rule in resource["Properties"].get("SecurityGroupEgress", []):
                yield logical_id, rule
        elif resource["Type"] == "AWS::EC2::SecurityGroupEgress":
            yield logical_id, resource["Properties"]


def policy_statements(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document anywhere in a template (roles, policies, key and bucket
    policies, inline policies)."""
    if isinstance(value, dict):
        statements = value.get("Statement")
        if isinstance(statements, list) and "Version" in value:
            for statement in statements:
                yield path, statement
        for key, child in value.items():
            yield from policy_statements(child, f"{path}/{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from policy_statements(child, f"{path}[{index}]")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_templates_were_scanned(templates: dict[str, dict[str, Any]]):
    pipeline = templates["default/FruitsPipeline"]
    assert len(list(ingress_rules(pipeline))) == 17  # 15 between EMR groups, 2 into the KMS endpoint
    assert len(list(policy_statements(pipeline))) >= 10
    assert any(
        r["Type"] == "Custom::CDKBucketDeployment"
        for r in templates["variant/FruitsData"]["Resources"].values()
    )


def test_no_security_group_admits_the_internet(templates: dict[str, dict[str, Any]]):
    for name, template in templates.items():
        for logical_id, rule in ingress_rules(template):
            assert rule.get("CidrIp") != OPEN_IPV4, f"{name}: {logical_id} admits {OPEN_IPV4}"
            assert rule.get("CidrIpv6") != OPEN_IPV6, f"{name}: {logical_id} admits {OPEN_IPV6}"
            assert "CidrIp" not in rule and "CidrIpv6" not in rule, (
                f"{name}: {logical_id} admits an address range"
            )
            assert "SourceSecurityGroupId" in rule


def test_no_ipv6_anywhere_and_ipv4_egress_only_from_the_emr_nodes(templates: dict[str, dict[str, Any]]):
    for name, template in templates.items():
        for logical_id, rule in egress_rules(template):
            assert rule.get("CidrIpv6") != OPEN_IPV6, f"{name}: {logical_id}"
            if rule.get("CidrIp") == OPEN_IPV4:
                # EMR's documented outbound rule for primary and core (EMR control plane, S3, KMS; the
                # internet with egress=nat)
                assert logical_id.startswith(("SecurityGroupsPrimary", "SecurityGroupsCore")), (
                    f"{name}: {logical_id}"
                )


def test_no_iam_statement_allows_every_action(templates: dict[str, dict[str, Any]]):
    for name, template in templates.items():
        for path, statement in policy_statements(template["Resources"]):
            actions = as_list(statement.get("Action", [])) + as_list(statement.get("NotAction", []))
            assert "*" not in actions, f"{name}{path}: Action *"
            if statement["Effect"] != "Allow":
                continue
            for action in actions:
                if isinstance(action, str) and action.endswith(":*"):
                    # only the default KMS key policy: the account root may delegate use of the key via IAM
                    assert action == "kms:*" and "/KeyPolicy/" in f"{path}/", f"{name}{path}: {action}"
