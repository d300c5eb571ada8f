"""cdk-nag AwsSolutions: 0 unacknowledged findings; every acknowledgement is ours, narrow and explained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack, Validations
from aws_cdk import aws_s3 as s3

from tests.infra.conftest import Synth, build_app

ACK_KEY = Validations.ACKNOWLEDGED_RULES_METADATA_KEY


def synth_with_nag(tmp: pytest.TempPathFactory, name: str, overrides: dict[str, Any]) -> Synth:
    synth = build_app(tmp.mktemp(name), overrides, nag=True)
    synth.app.synth()  # raises ValidationFailed on any unacknowledged finding
    return synth


@pytest.fixture(scope="module")
def synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    upload = tmp_path_factory.mktemp("upload")
    (upload / "Training").mkdir()
    (upload / "Training" / "a.jpg").write_bytes(b"\xff\xd8")
    variant = {
        "retainData": "false",
        "uploadDir": str(upload),
        "inputUri": "s3://other-bucket/fruits-360",
        "weights": "s3://models-bucket/mobilenet.h5",
    }
    return {
        "default": synth_with_nag(tmp_path_factory, "default", {}),
        "variant": synth_with_nag(tmp_path_factory, "variant", variant),
    }


def acknowledgements(synth: Synth) -> list[tuple[Any, str, str]]:
    found = []
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACK_KEY:
                for rule, reason in entry.data.items():
                    found.append((construct, rule, reason))
    return found


@pytest.mark.parametrize("name", ["default", "variant"])
def test_no_unacknowledged_findings(synths: dict[str, Synth], name: str):
    report = json.loads((synths[name].outdir / "validation-report.json").read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin["violations"]]
    assert violations == []


def test_the_checks_really_ran(tmp_path: Path):
    """A finding nobody acknowledged fails synth: the plugin is active on these stacks."""
    synth = build_app(tmp_path, {}, nag=True)
    # one more bucket, without server access logs and without an acknowledgement
    s3.Bucket(synth.stacks.data, "Unlogged", enforce_ssl=True)
    with pytest.raises(RuntimeError, match=r"AwsSolutions-S1"):
        synth.app.synth()


@pytest.mark.parametrize("name", ["default", "variant"])
def test_every_acknowledgement_is_narrow_and_explained(synths: dict[str, Synth], name: str):
    ours = [
        (c, rule, reason) for c, rule, reason in acknowledgements(synths[name]) if "AwsSolutions-" in rule
    ]
    assert len(ours) >= 10
    reasons = [reason for _, _, reason in ours]
    for construct, rule, reason in ours:
        where = f"{construct.node.path}: {rule}"
        assert not isinstance(construct, Stack), f"{where} is on a whole stack"
        assert len(reason) >= 60, f"{where}: reason too short: {reason!r}"
        assert reason.strip().lower() not in {"ok", "false positive", "not needed", "accepted"}, where
        # granular rules are acknowledged one finding at a time
        if rule.startswith(("Annotation::AwsSolutions-IAM4", "Annotation::AwsSolutions-IAM5")):
            assert "[" in rule and rule.endswith("]"), where
    # a reason is specific to its finding, not pasted everywhere (the BucketDeployment grants share two)
    assert len(set(reasons)) >= len(reasons) - 6


def test_acknowledgements_sit_on_the_resources_they_excuse(synths: dict[str, Synth]):
    paths = {
        (c.node.path, rule.removeprefix("Annotation::")) for c, rule, _ in acknowledgements(synths["default"])
    }
    assert ("FruitsPipeline/Cluster/Resource", "AwsSolutions-EMR4") in paths
    assert ("FruitsPipeline/Cluster/Resource", "AwsSolutions-EMR5") in paths
    assert ("FruitsPipeline/Cluster/Resource", "AwsSolutions-EMR6") in paths
    assert ("FruitsData/AccessLogsBucket", "AwsSolutions-S1") in paths
    assert (
        "FruitsPipeline/Access/ServiceRole",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2]",
    ) in paths
    assert ("FruitsPipeline/SgRuleRevoker/Role", "AwsSolutions-IAM5[Resource::*]") in paths
    assert not any(rule.startswith("AwsSolutions-IAM") and "Ec2Role" in path for path, rule in paths)
