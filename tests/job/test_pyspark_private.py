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


def test_outside_the_checked_series_the_file_index_falls_back_and_the_gateway_warns(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The gate itself: on a series nobody checked, the file index is not read (callers scan) and the
    gateway, which has no public alternative, is used with a warning naming the checked series."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    files = spark.read.format("binaryFile").load(str(tmp_path))
    assert pyspark_private.file_index_identities(files) is not None
    monkeypatch.setattr(pyspark_private.pyspark, "__version__", "4.0.2")
    assert pyspark_private.file_index_identities(files) is None
    with caplog.at_level("WARNING", logger=pyspark_private.__name__):
        assert pyspark_private.jvm(spark) is not None
    assert "relies on pyspark 3.5.* or 4.1.* internals; this is pyspark 4.0.2" in caplog.text
    assert drain_listener_events(spark) is False  # the tests' drain has the same gate


def test_file_index_identities_equal_the_public_scan(spark: SparkSession, tmp_path: Path) -> None:
    """What the features store's lookup relies on: the file index's statuses, parsed from their text, give
    what a scan of binaryFile's path, length and modificationTime gives (and the empty files it skips)."""
    from pyspark.sql import functions as F

    for name in ("a.jpg", "sub/b c.png", "sub/deeper/d;x.txt", "empty.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"" if name == "empty.jpg" else b"x" * len(name))
    os.utime(tmp_path / "a.jpg", ns=(1_700_000_000_123_000_000, 1_700_000_000_123_000_000))
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(str(tmp_path))
    listed = pyspark_private.file_index_identities(files)
    assert listed is not None, "the file index could not be read: see the log's warning"
    scanned = files.select("path", "length", F.unix_millis("modificationTime")).collect()
    non_empty = sorted(entry for entry in listed if entry[1] > 0)
    assert non_empty == sorted((row[0], row[1], row[2]) for row in scanned)
    assert {Path(p).name for p, n, _ in listed if n == 0} == {"empty.jpg"}
    assert (f"file:{tmp_path}/a.jpg", 5, 1_700_000_000_123) in listed


def test_file_status_text_of_other_file_systems_parses() -> None:
    """S3A's and HDFS's statuses (Hadoop 3.3/3.4 toString), a path holding '; ', a line that is not one."""
    s3a = (
        "S3ALocatedFileStatus{path=s3a://b/data/Training/Kiwi/a; b.jpg; isDirectory=false; length=4719; "
        "replication=1; blocksize=33554432; modification_time=1796164263000; access_time=0; owner=hadoop; "
        "group=hadoop; permission=rw-rw-rw-; isSymlink=false; hasAcl=false; isEncrypted=true; "
        "isErasureCoded=false}[eTag='\"3f2\"', versionId='v1']"
    )
    hdfs = (
        "HdfsLocatedFileStatus{path=hdfs://nn:8020/x/y.png; isDirectory=false; length=0; replication=3; "
        "blocksize=134217728; modification_time=17; access_time=17; owner=a; group=b; permission=rw-r--r--; "
        "isSymlink=false; hasAcl=false; isEncrypted=false; isErasureCoded=false}"
    )
    assert pyspark_private.parse_file_statuses(f"{s3a}\n{hdfs}") == [
        ("s3a://b/data/Training/Kiwi/a; b.jpg", 4719, 1796164263000),
        ("hdfs://nn:8020/x/y.png", 0, 17),
    ]
    assert pyspark_private.parse_file_statuses("") == []
    assert (
        pyspark_private.parse_file_statuses(f"{hdfs}\nFileStatus{{path=/a; isDirectory=true; ...}}") is None
    )


def test_file_index_identities_fall_back_on_what_they_cannot_read(spark: SparkSession) -> None:
    assert pyspark_private.file_index_identities(spark.range(3)) is None  # no file relation: the caller scans


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
