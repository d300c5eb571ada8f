"""Destroy without leftovers: CloudFormation deletes the cluster, then the group rules, then the revoker
(which revokes the rules EMR added and deletes its VPC endpoints), then the security groups. Read from the
dependency graph of the synthesized template (Ref, Fn::GetAtt, Fn::Sub and DependsOn), as CloudFormation
reads it, on both release lines (emr-spark-8.x has other group rules and EMR's service endpoint)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from stacks.sg_rule_revoker import RESOURCE_TYPE
from tests.cfn_template import references
from tests.infra.conftest import Synth, build_app

# The group rules of each line: 17 between the EMR groups on 7.x (12 + 8443 x2 + 9443) and 2 egress (8443),
# 12 on 8.x (its 443 from the VPC is inline in the service-access group); 2 into the KMS endpoint's group.
RULES = {"emr-7.14.0": 19, "emr-spark-8.1.0": 14}


class Graph:
    def __init__(self, template: dict[str, Any]) -> None:
        self.resources = template["Resources"]
        self.direct: dict[str, set[str]] = {}
        for logical_id, resource in self.resources.items():
            depends = resource.get("DependsOn", [])
            edges = references(resource.get("Properties", {})) | set(as_list(depends))
            self.direct[logical_id] = {e for e in edges if e in self.resources}

    @cache  # noqa: B019 - one graph per module
    def depends_on(self, source: str, target: str) -> bool:
        """True when `source` is created after (and deleted before) `target`."""
        seen, todo = set(), [source]
        while todo:
            node = todo.pop()
            for edge in self.direct[node]:
                if edge == target:
                    return True
                if edge not in seen:
                    seen.add(edge)
                    todo.append(edge)
        return False

    def of_type(self, type_name: str) -> list[str]:
        return sorted(k for k, r in self.resources.items() if r["Type"] == type_name)


def as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module", params=sorted(RULES))
def label(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def synth(label: str, default_synth: Synth, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    if label == default_synth.stacks.pipeline.config.release_label:
        return default_synth
    return build_app(tmp_path_factory.mktemp(label), {"releaseLabel": label})


@pytest.fixture(scope="module")
def graph(synth: Synth) -> Graph:
    return Graph(synth.pipeline.to_json())


@pytest.fixture(scope="module")
def revoker(graph: Graph) -> str:
    (logical_id,) = graph.of_type(RESOURCE_TYPE)
    return logical_id


def rules(graph: Graph) -> list[str]:
    return graph.of_type("AWS::EC2::SecurityGroupIngress") + graph.of_type("AWS::EC2::SecurityGroupEgress")


def test_cluster_is_deleted_before_every_rule_and_the_revoker(graph: Graph, revoker: str, label: str):
    (cluster,) = graph.of_type("AWS::EMR::Cluster")
    assert graph.resources[cluster]["Properties"]["ReleaseLabel"] == label
    assert len(rules(graph)) == RULES[label]
    for rule in rules(graph):
        assert graph.depends_on(cluster, rule), rule
    assert graph.depends_on(cluster, revoker)


def test_rules_are_deleted_before_the_revoker(graph: Graph, revoker: str):
    for rule in rules(graph):
        assert revoker in graph.direct[rule], rule
        assert not graph.depends_on(revoker, rule), f"cycle through {rule}"


def test_revoker_is_deleted_before_the_groups(graph: Graph, revoker: str):
    groups = [g for g in graph.of_type("AWS::EC2::SecurityGroup") if g.startswith("SecurityGroups")]
    assert len(groups) == 3
    properties = graph.resources[revoker]["Properties"]
    (vpc,) = graph.of_type("AWS::EC2::VPC")
    assert properties["VpcId"] == {"Ref": vpc}  # its endpoints EMR created are deleted first
    assert graph.depends_on(revoker, vpc)
    assert properties["GroupIds"] == [
        {"Fn::GetAtt": [group, "GroupId"]}
        for group in sorted(groups, key=lambda g: ["Primary", "Core", "ServiceAccess"].index(g[14:-8]))
    ]
    for group in groups:
        assert graph.depends_on(revoker, group)
        assert not graph.depends_on(group, revoker)


def test_revoker_keeps_its_function_and_permissions_until_it_is_deleted(graph: Graph, revoker: str):
    function = graph.resources[revoker]["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    assert graph.resources[function]["Type"] == "AWS::Lambda::Function"
    role = graph.resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert graph.depends_on(revoker, function)
    assert graph.depends_on(revoker, role)  # inline policies: part of the role itself
    assert "Policies" in graph.resources[role]["Properties"]


def test_revoker_function(graph: Graph, revoker: str):
    function = graph.resources[revoker]["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    props = graph.resources[function]["Properties"]
    assert props["Handler"] == "index.handler"
    assert props["Runtime"].startswith("python3.")
    assert "VpcConfig" not in props  # reaches the EC2 API without the (deleted) NAT
    role = graph.resources[props["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert "ManagedPolicyArns" not in role
    (policy,) = role["Policies"]
    by_sid = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    revoke = by_sid["RevokeRules"]
    assert revoke["Action"] == ["ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"]
    groups = {ref["Fn::GetAtt"][0] for ref in graph.resources[revoker]["Properties"]["GroupIds"]}
    assert {r["Fn::Join"][1][-1]["Fn::GetAtt"][0] for r in revoke["Resource"]} == groups
    assert by_sid["DescribeGroupsAndEndpoints"]["Action"] == [
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcEndpoints",
    ]
    assert by_sid["DeleteEmrServiceEndpoints"]["Action"] == "ec2:DeleteVpcEndpoints"
    assert by_sid["DeleteEmrServiceEndpoints"]["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/Name": "emr-service-vpce",
            "aws:ResourceTag/for-use-with-amazon-emr-managed-policies": "true",
        }
    }
    assert by_sid["ReadOwnStackStatus"] == {
        "Sid": "ReadOwnStackStatus",
        "Action": "cloudformation:DescribeStacks",
        "Effect": "Allow",
        "Resource": {"Ref": "AWS::StackId"},
    }


def test_the_cluster_is_the_only_thing_depending_on_the_revoker_besides_rules(graph: Graph, revoker: str):
    (cluster,) = graph.of_type("AWS::EMR::Cluster")
    dependents = {k for k, edges in graph.direct.items() if revoker in edges}
    assert dependents == set(rules(graph)) | {cluster}
