"""The driver's memory does not grow with the number of photos: no list of every path, no collection of
every stored identity, no file index of the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from spark_job.driver.featurize import featurize_stage
from spark_job.driver.storage import normalize
from spark_job.driver.store import new_run_id
from spark_job.driver.store_stage import store_featurize_stage
from spark_job.driver.timings import Timings
from tests.job.fake_engine import ByteCountEngineSpec
from tests.job.test_featurize_plumbing import fake_plan

REPO = Path(__file__).resolve().parents[2]


def tiny_photos(root: Path, per_class: int, classes: int = 3) -> int:
    """Files named like photos, a few bytes each (the byte-count engine decodes nothing)."""
    for c in range(classes):
        folder = root / f"Class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (folder / f"{i}.jpg").write_bytes(b"x" * (1 + i % 7))
    return per_class * classes


@pytest.fixture
def rows_to_driver(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every row a DataFrame or RDD action brings back to the driver (collect, take, first, toPandas)."""
    from pyspark import RDD

    # pyspark 4's classic DataFrame (a subclass of pyspark.sql.DataFrame) has its own collect.
    frame_class = type(spark.range(1))
    seen: list[int] = []
    real_df_collect, real_rdd_collect = frame_class.collect, RDD.collect

    def df_collect(self: DataFrame) -> list:  # type: ignore[type-arg]
        rows = real_df_collect(self)
        seen.append(len(rows))
        return rows

    def rdd_collect(self: RDD) -> list:  # type: ignore[type-arg]
        rows = real_rdd_collect(self)
        seen.append(len(rows))
        return rows

    monkeypatch.setattr(frame_class, "collect", df_collect)
    monkeypatch.setattr(RDD, "collect", rdd_collect)
    return seen


@pytest.mark.slow
def test_a_run_over_many_files_brings_no_list_of_them_to_the_driver(
    spark: SparkSession, tmp_path: Path, rows_to_driver: list[int]
) -> None:
    """3,000 photos with and without a store: every row the driver receives is a class folder, a count or
    one of the first skipped files or rejects; none is one per photo."""
    n = tiny_photos(tmp_path / "in", per_class=1000)
    (tmp_path / "in" / "Class0" / "empty.jpg").write_bytes(b"")
    plain = featurize_stage(
        spark, fake_plan(tmp_path, tmp_path / "in", engine=ByteCountEngineSpec()), Timings()
    )
    assert (plain.n_features, plain.n_rejected) == (n, 1)
    plan = fake_plan(
        tmp_path, tmp_path / "in", engine=ByteCountEngineSpec(), output=normalize(str(tmp_path / "store-run"))
    )
    stored, _ = store_featurize_stage(spark, plan, str(tmp_path / "store"), new_run_id("fit"), Timings())
    assert (stored.n_features, stored.n_inferred, stored.n_rejected) == (n, n, 1)
    assert rows_to_driver and sum(rows_to_driver) < 50, rows_to_driver


@pytest.mark.slow
def test_the_store_path_on_50000_files_stays_under_a_driver_ceiling(tmp_path: Path) -> None:
    """50,000 photos, a first run inferring them all and a second reusing them all, in a session whose
    driver may receive at most 4 MB of results per action (the previous design collected every stored
    identity: ~5 MB at this size) and whose Python heap on the driver grows by less than 2 MB during a
    run (its lists and dicts of every path: ~15 MB)."""
    n = tiny_photos(tmp_path / "in", per_class=25_000, classes=2)
    tiny_photos(tmp_path / "warm-up", per_class=5, classes=2)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.job.memory_run",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            str(tmp_path / "store"),
            str(tmp_path / "warm-up"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    first, second = json.loads(done.stdout.strip().splitlines()[-1])
    assert (first["images"], first["features"], first["inferred"]) == (n, n, n)
    assert (second["features"], second["inferred"], second["reused"]) == (n, 0, n)
    assert first["python_heap_peak"] < 2 << 20 and second["python_heap_peak"] < 2 << 20, (first, second)
