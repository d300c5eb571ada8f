"""cdk-nag AwsSolutions: 0 unacknowledged findings; every acknowledgement is ours, narrow, explained and
excuses a finding cdk-nag really reports.

A passing synth writes an empty validation-report.json (`"pluginReports": []`), so the report cannot show
anything; what is checked here is that synth raises on a finding nobody acknowledged, which findings the
stacks raise with the acknowledgements switched off, and the acknowledgements the construct tree and the
assembly's metadata hold (what scripts/nag_summary.py, run by `make deploy-check`, reads).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack, Validations
from aws_cdk import aws_s3 as s3

from stacks import PROJECT_ROOT
from tests.infra.conftest import Synth, build_app
from tests.runtime_support import ensure_wheelhouse

VARIANTS = ["default", "variant", "spot", "arm64", "lts"]

ACK_KEY = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
NAG_SUMMARY = PROJECT_ROOT / "scripts" / "nag_summary.py"


def synth_with_nag(tmp: pytest.TempPathFactory, name: str, overrides: dict[str, Any]) -> Synth:
    synth = build_app(tmp.mktemp(name), overrides, nag=True)
    synth.app.synth()  # raises ValidationFailed on any unacknowledged finding
    return synth


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    upload = tmp_path_factory.mktemp("upload")
    (upload / "Training").mkdir()
    (upload / "Training" / "a.jpg").write_bytes(b"\xff\xd8")
    variant = {
        "retainData": "false",
        "uploadDir": str(upload),
        "inputUri": "s3://other-bucket/fruits-360",
        "weights": "s3://models-bucket/mobilenet.h5",
        "egress": "nat",
        "schedule": "rate(1 day)",  # the schedule and its role
    }
    return {
        "default": {},
        "variant": variant,
        "spot": {"taskCapacity": "4"},  # a Spot task fleet
        "arm64": {
            "architecture": "arm64",
            "taskCapacity": "2",
            "wheelhouseDir": str(ensure_wheelhouse("aarch64")),
        },
        # emr-spark-8.1.0: the service role's endpoint statements, the service-access group's HTTPS rule
        "lts": {"releaseLabel": "emr-spark-8.1.0", "egress": "nat"},
    }


@pytest.fixture(scope="module")
def synths(tmp_path_factory: pytest.TempPathFactory, variants: dict[str, dict[str, Any]]) -> dict[str, Synth]:
    return {name: synth_with_nag(tmp_path_factory, name, overrides) for name, overrides in variants.items()}


@pytest.fixture(scope="module")
def unacknowledged(
    tmp_path_factory: pytest.TempPathFactory, variants: dict[str, dict[str, Any]]
) -> dict[str, Path]:
    """The same apps with `Validations.acknowledge` switched off: synth fails, the report lists every finding
    cdk-nag raises on our stacks. Returns each one's output folder."""
    outdirs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Validations, "acknowledge", lambda self, *acknowledgments: None)
        for name, overrides in variants.items():
            synth = build_app(tmp_path_factory.mktemp(f"bare-{name}"), overrides, nag=True)
            with pytest.raises(RuntimeError, match="ValidationFailed"):
                synth.app.synth()
            outdirs[name] = synth.outdir
    return outdirs


def findings(outdir: Path) -> set[tuple[str, str]]:
    """(rule, construct path) of every finding in a failed synth's validation-report.json."""
    report = json.loads((outdir / "validation-report.json").read_text())
    return {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }


def nag_summary(outdir: str) -> subprocess.CompletedProcess[str]:
    """scripts/nag_summary.py, as `make deploy-check` runs it."""
    return subprocess.run(
        [sys.executable, str(NAG_SUMMARY), outdir], capture_output=True, text=True, timeout=60, check=False
    )


def nag_rule(rule: str) -> str:
    """`Annotation::AwsSolutions-IAM5[...]` -> `AwsSolutions-IAM5[...]`"""
    return rule[rule.index("AwsSolutions-") :]


def acknowledgements(synth: Synth) -> list[tuple[Any, str, str]]:
    found = []
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACK_KEY:
                for rule, reason in entry.data.items():
                    found.append((construct, rule, reason))
    return found


@pytest.mark.parametrize("name", VARIANTS)
def test_each_finding_has_an_acknowledgement_and_each_acknowledgement_a_finding(
    synths: dict[str, Synth], unacknowledged: dict[str, Path], name: str
):
    """Synth passed (the fixture), and the acknowledgements are exactly what it needs: every finding cdk-nag
    reports without them is excused by one on its resource or an ancestor, and none excuses nothing."""
    raised = findings(unacknowledged[name])
    assert len(raised) >= 9
    acks = {
        (construct.node.path, nag_rule(rule))
        for construct, rule, _ in acknowledgements(synths[name])
        if "AwsSolutions-" in rule
    }

    def excuses(ack: tuple[str, str], finding: tuple[str, str]) -> bool:
        (path, rule), (found_rule, found_path) = ack, finding
        return rule == found_rule and (found_path == path or found_path.startswith(path + "/"))

    unexcused = [f for f in raised if not any(excuses(a, f) for a in acks)]
    assert unexcused == []
    stale = [a for a in acks if not any(excuses(a, f) for f in raised)]
    assert stale == [], "acknowledgements of findings cdk-nag does not report"


@pytest.mark.parametrize("name", VARIANTS)
def test_nag_summary_reads_each_acknowledgement_from_the_assembly(synths: dict[str, Synth], name: str):
    """What `make deploy-check` reports: the acknowledgements recorded in the assembly's stack metadata are
    the construct tree's, each with its reason; 0 open findings."""
    result = nag_summary(str(synths[name].outdir))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    tree = {
        (nag_rule(rule), construct.node.path, reason)
        for construct, rule, reason in acknowledgements(synths[name])
        if "AwsSolutions-" in rule
    }
    listed = set()
    for line in lines:
        if line.startswith("ACK   "):
            rule, path, reason = line.removeprefix("ACK   ").split("  ", 2)
            listed.add((rule, path, reason.removeprefix("(").removesuffix(")")))
    assert listed == tree
    assert lines[-1] == f"0 open findings, {len(tree)} acknowledged on resources, each with a reason"


def test_nag_summary_fails_on_open_findings(unacknowledged: dict[str, Path]):
    result = nag_summary(str(unacknowledged["default"]))
    assert result.returncode == 1
    raised = findings(unacknowledged["default"])
    assert "OPEN  AwsSolutions-EMR4  FruitsPipeline/Cluster/Resource" in result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"{len(raised)} open finding(s)")


def test_nag_summary_fails_on_an_acknowledgement_without_reason_or_on_a_stack(tmp_path: Path):
    (tmp_path / "validation-report.json").write_text(json.dumps({"pluginReports": []}))
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "artifacts": {
                    "S": {"type": "aws:cloudformation:stack", "additionalMetadataFile": "S.metadata.json"},
                }
            }
        )
    )
    reason = "a reason long enough to pass the length check, naming what it excuses and why"
    metadata = {
        "/S": [{"type": ACK_KEY, "data": {"Annotation::AwsSolutions-IAM4": reason}}],
        "/S/Role/Resource": [{"type": ACK_KEY, "data": {"Annotation::AwsSolutions-IAM5[Resource::*]": "ok"}}],
        "/S/Bucket/Resource": [{"type": ACK_KEY, "data": {"Annotation::AwsSolutions-S1": reason}}],
    }
    (tmp_path / "S.metadata.json").write_text(json.dumps(metadata))
    result = nag_summary(str(tmp_path))
    assert result.returncode == 1
    assert "BAD   AwsSolutions-IAM4 on the whole stack S" in result.stdout
    assert "BAD   AwsSolutions-IAM5[Resource::*] on S/Role/Resource: reason shorter than" in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("BAD") and "-S1 " in line]
    assert result.stdout.splitlines()[-1] == "2 acknowledgement problem(s) among 3"


def test_the_checks_really_ran(tmp_path: Path):
    """A finding nobody acknowledged fails synth: the plugin is active on these stacks."""
    synth = build_app(tmp_path, {}, nag=True)
    # one more bucket, without server access logs and without an acknowledgement
    s3.Bucket(synth.stacks.data, "Unlogged", enforce_ssl=True)
    with pytest.raises(RuntimeError, match=r"AwsSolutions-S1"):
        synth.app.synth()


@pytest.mark.parametrize("name", VARIANTS)
def test_every_acknowledgement_is_narrow_and_explained(synths: dict[str, Synth], name: str):
    ours = [
        (c, rule, reason) for c, rule, reason in acknowledgements(synths[name]) if "AwsSolutions-" in rule
    ]
    assert len(ours) >= 9
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
    # cdk-nag's S1 passes a bucket that is the access-log target of another: nothing to acknowledge there
    assert not any(rule == "AwsSolutions-S1" for _, rule in paths)
    assert (
        "FruitsPipeline/Access/ServiceRole",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2]",
    ) in paths
    assert ("FruitsPipeline/SgRuleRevoker/Role", "AwsSolutions-IAM5[Resource::*]") in paths
    assert not any(rule.startswith("AwsSolutions-IAM") and "Ec2Role" in path for path, rule in paths)


def test_the_scheduler_role_acknowledgements_sit_on_it(synths: dict[str, Synth]):
    paths = {
        (c.node.path, rule.removeprefix("Annotation::")) for c, rule, _ in acknowledgements(synths["variant"])
    }
    role = "FruitsPipeline/Runs/SchedulerRole"
    assert (role, "AwsSolutions-IAM5[Resource::*]") in paths  # RunJobFlow has no resource type
    assert (
        role,
        "AwsSolutions-IAM5[Resource::arn:aws:elasticmapreduce:eu-west-3:<AWS::AccountId>:cluster/*]",
    ) in paths
    assert not any(
        path.startswith("FruitsPipeline/Runs") for path, _ in acknowledgements_paths(synths["default"])
    )


def test_the_lts_service_role_acknowledges_the_emr_service_endpoint(synths: dict[str, Synth]):
    """EMR 8's endpoint gets its id at launch: one acknowledgement, on the service role, on that line only."""
    rule = "AwsSolutions-IAM5[Resource::arn:aws:ec2:eu-west-3:<AWS::AccountId>:vpc-endpoint/*]"
    role = "FruitsPipeline/Access/ServiceRole"
    lts, default = (
        {(c.node.path, r.removeprefix("Annotation::")) for c, r, _ in acknowledgements(synths[name])}
        for name in ("lts", "default")
    )
    assert (role, rule) in lts
    assert (role, rule) not in default
    # the revoker's own acknowledgement of the same resource pattern stays on the revoker's role
    assert ("FruitsPipeline/SgRuleRevoker/Role", rule) in lts & default


def acknowledgements_paths(synth: Synth) -> set[tuple[str, str]]:
    return {(c.node.path, rule) for c, rule, _ in acknowledgements(synth)}
