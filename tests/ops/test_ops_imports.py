"""The operator CLI reads the job's shared names and records without pulling in Spark or TensorFlow, nor
the CDK (ops reads the run contract, stacks/run_contract.py, which imports no CDK), and the CDK app reads the
shared names without the job's runtime: each side imports only what it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.ops.support import REPO

CHECK = (
    "import sys, importlib\n"
    "heavy, names = sys.argv[1].split(','), sys.argv[2:]\n"
    "for name in names: importlib.import_module(name)\n"
    "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
)
JOB_RUNTIME = ["pyspark", "tensorflow", "keras", "py4j"]
CDK = ["aws_cdk", "jsii"]  # starting the CDK starts a Node.js process: ops never needs it


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        (["ops.cli", "ops.runs", "ops.status", "ops.upload", "ops.run", "ops.clusters"], JOB_RUNTIME + CDK),
        (
            ["spark_job.contract.names", "spark_job.contract.records", "stacks.run_contract"],
            JOB_RUNTIME + CDK,
        ),
        (["stacks.fruits_stacks", "stacks.config"], JOB_RUNTIME),
    ],
    ids=["ops", "shared-names", "stacks"],
)
def test_imports_stay_light(modules: list[str], forbidden: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, ",".join(forbidden), *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "", f"{modules} imported {result.stdout.strip()}"
