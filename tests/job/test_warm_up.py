"""The featurize stage's start: the model is built in the Python workers ahead of the first task, in the very
workers predict_batch_udf's tasks then run in, and a failed listing leaves no warm-up job behind."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_job.engine import TensorFlowEngineSpec, warm_up_workers
from spark_job.featurize import EMPTY_FILE_REASON, reject_rows
from spark_job.storage import Storage
from tests.job_support import run_cli


@pytest.fixture
def fresh_worker_pool(spark: SparkSession) -> Iterator[None]:
    """Python workers of their own: Spark pools workers by environment, so earlier tests' workers (which may
    hold a model already) cannot answer for this test's."""
    environment = spark.sparkContext.environment
    environment["FRUITS_TEST_POOL"] = uuid.uuid4().hex
    yield
    del environment["FRUITS_TEST_POOL"]


def test_warm_up_builds_the_model_in_the_workers_udf_tasks_use(
    spark: SparkSession, weights_path: Path, fresh_worker_pool: None
) -> None:
    spark.sparkContext.addFile(str(weights_path))
    spec = TensorFlowEngineSpec(weights_path.name, 224, threads=1)
    warmed = warm_up_workers(spark, spec)
    assert warmed >= 1

    @F.pandas_udf("string")  # type: ignore[call-overload]
    def worker_state(ids: pd.Series) -> pd.Series:
        from spark_job import engine

        has_model = spec in engine._ENGINES
        return pd.Series([f"{os.getpid()} {has_model} {gc.get_freeze_count()}"] * len(ids))

    slots = spark.sparkContext.defaultParallelism
    rows = (
        spark.range(0, 4 * slots, 1, numPartitions=4 * slots).select(worker_state("id").alias("s")).collect()
    )
    states = {tuple(row.s.split()) for row in rows}
    # Every task ran in a worker that already had the model, and whose long-lived objects are frozen out of
    # the garbage collector pyspark runs after each task.
    assert all(has_model == "True" for _, has_model, _ in states), states
    assert all(int(frozen) > 100_000 for _, _, frozen in states), states
    assert len({pid for pid, _, _ in states}) <= warmed


def test_failed_listing_cancels_the_warm_up(spark: SparkSession, tmp_path: Path, weights_path: Path) -> None:
    (tmp_path / "in" / "Orange").mkdir(parents=True)
    (tmp_path / "in" / "notes.txt").write_text("no photo here")
    code = run_cli(
        spark, "fit", "--input", tmp_path / "in", "--output", tmp_path / "out", "--weights", weights_path
    )
    assert code == 2
    assert list(spark.sparkContext.statusTracker().getActiveJobsIds()) == []
    assert not (tmp_path / "out").exists()


def test_every_listed_image_missing_from_features_is_a_reject_with_a_reason(
    spark: SparkSession, tmp_path: Path
) -> None:
    names = ("read.jpg", "bad.jpg", "empty.jpg", "replaced.jpg", "gone.jpg")
    (tmp_path / "read.jpg").write_bytes(b"\xff\xd8 some bytes")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "replaced.jpg").write_bytes(b"12345")
    listed = [f"file:{tmp_path}/{name}" for name in names]
    features = spark.createDataFrame([(listed[0], "x")], "path string, label string")
    decoder_said = {listed[1]: "not a decodable image (10 bytes)"}

    reasons = dict(reject_rows(Storage(spark), listed, features, 1, decoder_said))
    assert set(reasons) == set(listed[1:])
    assert reasons[listed[1]] == "not a decodable image (10 bytes)"
    assert reasons[listed[2]] == EMPTY_FILE_REASON
    assert "(5 bytes)" in reasons[listed[3]]
    assert "disappeared" in reasons[listed[4]]
    # Counts that add up need no listing of features/: the decoder's reasons are the rejects.
    assert reject_rows(Storage(spark), listed[:2], features, 1, decoder_said) == [
        (listed[1], decoder_said[listed[1]])
    ]
