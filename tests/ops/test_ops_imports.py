"""The operator CLI reads the job's shared names and records without pulling in Spark or TensorFlow, and the
CDK app reads the shared names without the job's runtime: each side imports only what it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.ops.support import REPO

CHECK = (
    "import sys, importlib\n"
    "for name in sys.argv[1:]: importlib.import_module(name)\n"
    "heavy = sorted(m for m in ('pyspark', 'tensorflow', 'keras', 'py4j') if m in sys.modules)\n"
    "print(','.join(heavy))\n"
)


@pytest.mark.parametrize(
    "modules",
    [
        ["ops.cli", "ops.runs", "ops.status", "ops.upload"],
        ["spark_job.contract.names", "spark_job.contract.records"],
        ["stacks.fruits_stacks", "stacks.config"],
    ],
)
def test_imports_stay_light(modules: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, *modules], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"{modules} imported {result.stdout.strip()}"
