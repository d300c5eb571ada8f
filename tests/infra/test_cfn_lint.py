"""cfn-lint over every template the real CLI synthesizes (`npx --no-install cdk synth`, cdk.json's app
command, cdk-nag on): 0 errors, 0 warnings. Ignored rules live in .cfnlintrc.yaml, each with its reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import PROJECT_ROOT
from tests.infra.conftest import TEST_CONTEXT
from tests.runtime_support import ensure_wheelhouse

CFN_LINT = Path(sys.executable).parent / "cfn-lint"
ENV = {
    **os.environ,
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "AWS_EC2_METADATA_DISABLED": "true",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
}

# The pinned CDK CLI synthesizes the app four times, in subprocesses (~15 s each): the slow tier.
pytestmark = pytest.mark.slow


def cli_synth(outdir: Path, *context: str) -> list[Path]:
    # --no-staging: the templates are what is linted; no copy of the 400 MB wheelhouse into outdir.
    args = ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "--no-staging"]
    args += ["--output", str(outdir)]
    for item in (f"weightsFile={TEST_CONTEXT['weightsFile']}", *context):
        args += ["--context", item]
    result = subprocess.run(args, cwd=PROJECT_ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(outdir.glob("*.template.json"))


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    ensure_wheelhouse()  # the app's default: build/wheelhouse/x86_64
    upload = tmp_path_factory.mktemp("upload")
    (upload / "Test").mkdir()
    (upload / "Test" / "a.jpg").write_bytes(b"\xff\xd8")
    return {
        "default": cli_synth(tmp_path_factory.mktemp("default")),
        "variant": cli_synth(
            tmp_path_factory.mktemp("variant"),
            "retainData=false",
            f"uploadDir={upload}",
            "components=224",
            "coreCapacity=3",
            "taskCapacity=4",
            "inputUri=s3://other-bucket/fruits",
            "egress=nat",
            "schedule=cron(0 3 * * ? *)",
        ),
        # Graviton with a Spot task fleet: the app's default wheelhouse folder for aarch64
        "arm64": cli_synth(
            tmp_path_factory.mktemp("arm64"),
            f"wheelhouseDir={ensure_wheelhouse('aarch64')}",
            "architecture=arm64",
            "taskCapacity=2",
        ),
        # The LTS line: EMR 8's service endpoint rules and permissions
        "lts": cli_synth(tmp_path_factory.mktemp("lts"), "releaseLabel=emr-spark-8.1.0"),
    }


@pytest.mark.parametrize("name", ["default", "variant", "arm64", "lts"])
def test_cli_synth_writes_both_stacks(templates: dict[str, list[Path]], name: str):
    assert [p.name for p in templates[name]] == ["FruitsData.template.json", "FruitsPipeline.template.json"]


@pytest.mark.parametrize("name", ["default", "variant", "arm64", "lts"])
def test_cfn_lint_is_clean(templates: dict[str, list[Path]], name: str):
    result = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", *map(str, templates[name])],
        cwd=PROJECT_ROOT,  # picks up .cfnlintrc.yaml
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_every_ignored_rule_has_a_reason():
    lines = (PROJECT_ROOT / ".cfnlintrc.yaml").read_text().splitlines()
    ignored = [i for i, line in enumerate(lines) if re.match(r"^\s+- [EWI]\d{4}\s*$", line)]
    assert ignored, "no ignored rule: drop this test's premise or the file"
    for index in ignored:
        assert lines[index - 1].strip().startswith("#"), (
            f"{lines[index].strip()} has no reason comment above it"
        )
