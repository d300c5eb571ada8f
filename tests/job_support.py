"""Helpers shared by tests that run the job: its CLI in-process, reading a run's manifest, and checking that
no Spark job is left running (through the one private pyspark API only the tests use: the listener bus)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from spark_job.contract.records import ManifestRecord
from spark_job.driver.cli import main
from spark_job.shims.pyspark_private import pyspark_supported

log = logging.getLogger(__name__)


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
    assert drain_listener_events(spark), "Spark's listener bus did not drain"
    return list(spark.sparkContext.statusTracker().getActiveJobsIds())


def drain_listener_events(spark: SparkSession, timeout_s: float = 10.0) -> bool:
    """Wait until every event posted so far has reached Spark's listeners: True, else False (the timeout, or
    not a pyspark series the job's private APIs are checked on: 3.5 and 4.1, the shim's gate). For checks
    of the status tracker, whose job states arrive through the asynchronous listener bus: an action's job
    can have ended while the tracker still lists it as active (seen once in a clean-clone CI, 2026-12-02).
    Relies on SparkContext.listenerBus().waitUntilEmpty(ms), private[spark] in Scala and public to py4j
    (guard test: tests/job/test_pyspark_private.py)."""
    if not pyspark_supported():
        return False
    try:
        spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(int(timeout_s * 1000))
    except Exception as exc:  # py4j: a TimeoutException, or a renamed method
        log.warning("Spark's listener bus not drained (%s)", str(exc).splitlines()[0][:200])
        return False
    return True
