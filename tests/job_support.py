"""Helpers shared by tests that run the job: its CLI in-process, reading a run's manifest, and checking that
no Spark job is left running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from spark_job import internals
from spark_job.cli import main
from spark_job.records import ManifestRecord


def run_cli(spark: SparkSession, *argv: object) -> int:
    return main([str(a) for a in argv], spark=spark)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest.json as a dict, after checking that it reads as a ManifestRecord."""
    text = (run_dir / "manifest.json").read_text()
    ManifestRecord.from_json(text, str(run_dir / "manifest.json"))
    return json.loads(text)


def active_jobs(spark: SparkSession) -> list[int]:
    """The jobs still running, once every earlier job's end has reached the status tracker.

    The tracker learns of a job's end through the asynchronous listener bus. A job that succeeds posts its
    end before its action returns; one that fails or is cancelled posts it just after its action raised,
    in the same step of the scheduler's event loop. A one-task job run now is scheduled after that step,
    so once it is done every earlier end event is posted, and draining the bus delivers them."""
    spark.sparkContext.parallelize([0], 1).count()
    assert internals.drain_listener_events(spark), "Spark's listener bus did not drain"
    return list(spark.sparkContext.statusTracker().getActiveJobsIds())
