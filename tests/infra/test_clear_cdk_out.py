"""scripts/clear_cdk_out.sh, which `make deploy-check` runs before it synthesizes: it removes a cloud assembly
and what a failed synth leaves, and nothing that CDK does not write."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from stacks import PROJECT_ROOT
from tests.infra.conftest import TEST_CONTEXT

SCRIPT = PROJECT_ROOT / "scripts" / "clear_cdk_out.sh"
ASSET = "asset." + "0123456789abcdef" * 4


def clear(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=30)


def fill(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        if name.startswith("asset.") and "." not in name.removeprefix("asset."):
            (folder / name).mkdir()
            (folder / name / "index.js").write_text("exports.handler = () => {};\n")
        else:
            (folder / name).write_text("{}")
    return folder


@pytest.mark.parametrize(
    "names",
    [
        (ASSET, "synth.lock"),  # a synth that failed once the network's custom resource was staged
        (ASSET, f"{ASSET}.zip", "read.4242.1.lock"),
        ("manifest.json", "cdk.out", "tree.json", "FruitsData.template.json", "FruitsData.assets.json"),
        ("manifest.json", "notes.txt"),  # a cloud assembly is CDK's, whatever was added to it
        (),
    ],
    ids=["failed-synth", "failed-synth-zip-asset", "assembly", "assembly-with-extra", "empty"],
)
def test_what_cdk_wrote_is_removed(tmp_path: Path, names: tuple[str, ...]):
    folder = fill(tmp_path / "cdk.out", *names)
    result = clear(folder)
    assert result.returncode == 0, result.stderr
    assert not folder.exists()
    failed_synth = names and "manifest.json" not in names
    assert ("holds only what an earlier, failed synth left" in result.stdout) == bool(failed_synth)


@pytest.mark.parametrize(
    ("names", "listed"),
    [
        ((ASSET, "my-notes.txt"), "my-notes.txt"),
        (("asset.not-a-hash",), "asset.not-a-hash"),
        ((".env",), ".env"),
    ],
)
def test_anything_else_is_left_alone(tmp_path: Path, names: tuple[str, ...], listed: str):
    folder = fill(tmp_path / "cdk.out", *names)
    result = clear(folder)
    assert result.returncode == 1
    assert "exists and is not a cloud assembly (no manifest.json)" in result.stderr
    assert listed in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(names), "nothing removed"


def test_a_missing_folder_is_fine_and_a_file_is_refused(tmp_path: Path):
    assert clear(tmp_path / "absent").returncode == 0
    (tmp_path / "file").write_text("mine")
    result = clear(tmp_path / "file")
    assert result.returncode == 1 and "is not a folder" in result.stderr
    assert (tmp_path / "file").read_text() == "mine"


def test_deploy_check_stops_before_synth_on_a_folder_that_is_not_cdk(tmp_path: Path):
    folder = fill(tmp_path / "out", "report.pdf")
    env = {**os.environ, "CDK_OUT": str(folder), "DEPLOY_CHECK_LOGS": str(tmp_path / "logs")}
    result = subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "deploy_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "report.pdf" in result.stderr and "== synth" not in result.stdout
    assert (folder / "report.pdf").exists()


@pytest.mark.slow
def test_after_a_real_failed_synth_the_folder_is_cleared(tmp_path: Path):
    """The CLI's synth failing after staging an asset (here: an empty wheelhouse folder, checked once the
    network's custom resource is staged; a synth without internet for the weights fails the same way)."""
    out = tmp_path / "cdk.out"
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(out)]
    command += ["-c", f"weightsFile={TEST_CONTEXT['weightsFile']}", "-c", f"wheelhouseDir={empty}"]
    synth = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert synth.returncode != 0
    assert "no wheelhouse for x86_64" in synth.stderr
    left = sorted(p.name for p in out.iterdir())
    assert left and all(name.startswith("asset.") for name in left), left
    assert not (out / "manifest.json").exists()

    result = clear(out)
    assert result.returncode == 0, result.stderr
    assert not out.exists()
