"""Usage errors (exit 2) and missing credentials (exit 3, one line) for every command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ops.cli import main
from ops.config import default_region
from tests.ops.support import REPO, pipeline_outputs


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["upload"],
        ["upload", "a", "b"],
        ["upload", ".", "--workers", "0"],
        ["status", "--poll", "0"],
        ["status", "--timeout", "soon"],
        ["runs", "extra"],
        ["results", "a", "b"],
        ["--region"],
    ],
)
def test_bad_usage_exits_2_with_the_usage(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m ops")
    assert "error:" in err


def test_help_exits_0(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("upload", "status", "runs", "results"):
        assert command in out
    assert "exit codes: 0 ok; 1 an EMR step" in out


@pytest.fixture
def no_credentials(aws_env, monkeypatch) -> dict[str, str]:
    """The emulator is there, but no credentials anywhere (env, files, instance metadata)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
        aws_env.pop(key)
    return aws_env


@pytest.mark.parametrize("argv", [["status"], ["status", "--follow"], ["runs"], ["results"], ["upload"]])
def test_missing_credentials_is_a_one_line_error(no_credentials, argv: list[str], tmp_path, capsys) -> None:
    if argv == ["upload"]:
        (tmp_path / "Training" / "Kiwi").mkdir(parents=True)
        (tmp_path / "Training" / "Kiwi" / "0_100.jpg").write_bytes(b"\xff\xd8")
        argv = ["upload", str(tmp_path)]
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert captured.err == (
        "error: no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), "
        "or run `aws configure` / `aws sso login`\n"
    )
    assert captured.out == ""


def test_missing_credentials_from_the_command_line(no_credentials) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ops", "runs"], cwd=REPO, env=no_credentials, capture_output=True, text=True
    )
    assert done.returncode == 3
    assert done.stderr.startswith("error: no AWS credentials found")
    assert "Traceback" not in done.stderr


def test_unknown_profile_is_a_one_line_error(aws_env, capsys) -> None:
    assert main(["--profile", "nope", "runs"]) == 3
    assert capsys.readouterr().err == "error: AWS profile not found: nope (see ~/.aws/config)\n"


def test_default_region_is_cdk_json_context_region_else_eu_west_3(tmp_path) -> None:
    assert default_region(tmp_path) == "eu-west-3"  # no cdk.json
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"app": "x", "context": {"region": "us-west-2"}}))
    assert default_region(tmp_path) == "us-west-2"
    for document in (
        "{not json",
        json.dumps({"context": {}}),
        json.dumps({"context": {"region": None}}),
        "[]",
    ):
        cdk_json.write_text(document)
        assert default_region(tmp_path) == "eu-west-3", document
    assert default_region(REPO) == json.loads((REPO / "cdk.json").read_text())["context"]["region"]


def test_commands_use_the_region_of_cdk_json_in_the_working_directory(
    aws_env, deploy_stack, tmp_path, monkeypatch, capsys
) -> None:
    """`make status` runs from the repository: its cdk.json names the region the stacks were deployed to."""
    deploy_stack("FruitsPipeline", pipeline_outputs("j-NOTACLUSTER0"))  # in eu-west-3
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"region": "us-west-2"}}))
    assert main(["status"]) == 3
    assert "stack FruitsPipeline is not deployed in us-west-2" in capsys.readouterr().err
    assert main(["--region", "eu-west-3", "status"]) == 3  # --region wins; the stack is found there
    assert "EMR cluster j-NOTACLUSTER0 (output ClusterId of stack FruitsPipeline)" in capsys.readouterr().err
    monkeypatch.chdir(REPO)
    assert main(["status"]) == 3  # cdk.json's eu-west-3
    assert "EMR cluster j-NOTACLUSTER0" in capsys.readouterr().err
