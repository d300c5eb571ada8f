"""Helpers shared by tests that run the job: its CLI in-process, and reading a run's manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from spark_job.cli import main
from spark_job.records import ManifestRecord


def run_cli(spark: SparkSession, *argv: object) -> int:
    return main([str(a) for a in argv], spark=spark)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest.json as a dict, after checking that it reads as a ManifestRecord."""
    text = (run_dir / "manifest.json").read_text()
    ManifestRecord.from_json(text, str(run_dir / "manifest.json"))
    return json.loads(text)
