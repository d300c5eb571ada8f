"""Guard tests for spark_job/shims/pyspark_private.py, each failing when what it relies on changes, and for
the tests' own listener-bus drain (tests/job_support.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from spark_job.shims import pyspark_private
from tests.job_support import drain_listener_events


def test_written_for_this_pyspark() -> None:
    """Every py4j shortcut here was written against pyspark 3.5 and checked on 4.1 (this file's tests pass on
    both venvs, `make test`): a new series needs a look at each. 4.0 (emr-spark-8.0.0) was never tested."""
    assert pyspark_private.pyspark_supported()
    assert pyspark_private.PYSPARK_SERIES == ("3.5.", "4.1.")
    for version in ("3.5.9", "3.5.6-amzn-2", "4.1.1", "4.1.1-amzn-0"):
        assert pyspark_private.pyspark_supported(version), version
    for version in ("3.4.4", "4.0.2", "4.0.2-amzn-0", "4.2.0", "4.10.0", "3.50.1"):
        assert not pyspark_private.pyspark_supported(version), version


def test_outside_the_checked_series_the_gateway_warns(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The gate itself: on a series nobody checked, the gateway, which has no public alternative, is used
    with a warning naming the checked series."""
    with caplog.at_level("WARNING", logger=pyspark_private.__name__):
        assert pyspark_private.jvm(spark) is not None
    assert "internals" not in caplog.text
    monkeypatch.setattr(pyspark_private.pyspark, "__version__", "4.0.2")
    with caplog.at_level("WARNING", logger=pyspark_private.__name__):
        assert pyspark_private.jvm(spark) is not None
    assert "relies on pyspark 3.5.* or 4.1.* internals; this is pyspark 4.0.2" in caplog.text
    assert drain_listener_events(spark) is False  # the tests' drain has the same gate


def test_drained_listener_events_show_an_ended_job_as_ended(spark: SparkSession) -> None:
    """tests/job_support.drain_listener_events relies on SparkContext.listenerBus().waitUntilEmpty: after
    it, the status tracker (fed by that bus) no longer lists a job that has ended, here one of many tasks."""
    assert spark.sparkContext.parallelize(range(80), 40).map(lambda x: x + 1).sum() == 3240
    assert drain_listener_events(spark, timeout_s=30)
    assert list(spark.sparkContext.statusTracker().getActiveJobsIds()) == []


def test_pca_model_made_in_the_jvm_projects_like_its_matrix(spark: SparkSession) -> None:
    import numpy as np
    from pyspark.ml.linalg import DenseMatrix, DenseVector, Vectors

    components = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    matrix = DenseMatrix(3, 2, components.flatten(order="F").tolist())
    model = pyspark_private.pca_model(spark, matrix, DenseVector([0.6, 0.3]), k=2)
    model.setInputCol("x").setOutputCol("y")
    out = model.transform(spark.createDataFrame([(Vectors.dense([1.0, 1.0, 5.0]),)], ["x"])).first()
    assert list(out["y"]) == [1.0, 2.0] and model.getK() == 2
    assert list(model.explainedVariance) == [0.6, 0.3]


@pytest.mark.slow
def test_a_local_session_runs_its_jvm_with_the_quick_compiler_only() -> None:
    """The job's local session gives its driver JVM (which runs the tasks in local mode) C1 only
    (spark_job.driver.session.LOCAL_JVM_OPTIONS)."""
    probe = Path(__file__).with_name("session_probe.py")
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, str(probe)], env=environ, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "-XX:TieredStopAtLevel=1" in seen["jvm_options"]
