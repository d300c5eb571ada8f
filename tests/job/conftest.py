"""One SparkSession (local[2]) for the job tests, and the sample's fit and transform runs, made once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from spark_job.cli import main


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("fruits-tests")
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


def run_cli(spark: SparkSession, *argv: str) -> int:
    return main([str(a) for a in argv], spark=spark)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def fit_run(spark, sample_dir, weights_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fit"
    assert (
        run_cli(spark, "fit", "--input", sample_dir / "Training", "--output", out, "--weights", weights_path)
        == 0
    )
    return out


@pytest.fixture(scope="session")
def transform_run(spark, sample_dir, weights_path, fit_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "transform"
    code = run_cli(
        spark,
        "transform",
        "--model",
        fit_run / "model",
        "--input",
        sample_dir / "Test",
        "--output",
        out,
        "--weights",
        weights_path,
    )
    assert code == 0
    return out
