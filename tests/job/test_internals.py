"""Guard tests for spark_job/internals.py: each fails when what its trick relies on changes."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import zipfile
import zipimport
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from spark_job import internals


@pytest.fixture
def directory_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The patch on a clean zipimporter (restored after), and a log of every archive directory read."""
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches", zipimport.zipimporter.invalidate_caches)
    reads: list[str] = []
    real = zipimport._read_directory  # type: ignore[attr-defined]

    def counting(archive: str):  # type: ignore[no-untyped-def]
        reads.append(archive)
        return real(archive)

    monkeypatch.setattr(zipimport, "_read_directory", counting)
    assert internals.speed_up_worker_imports()
    return reads


def write_zip(path: Path, names: list[str], mtime_ns: int) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "X = 1\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_an_unchanged_archive_is_not_read_again(directory_reads: list[str], tmp_path: Path) -> None:
    archive = tmp_path / "lib.zip"
    write_zip(archive, ["pkg/__init__.py", "pkg/a.py"], 10**18)
    top, sub = zipimport.zipimporter(str(archive)), zipimport.zipimporter(str(archive / "pkg"))
    top.invalidate_caches()
    sub.invalidate_caches()
    directory_reads.clear()
    for _ in range(3):
        top.invalidate_caches()
        sub.invalidate_caches()
    assert directory_reads == []


def test_every_importer_of_a_changed_archive_sees_the_change(
    directory_reads: list[str], tmp_path: Path
) -> None:
    """One stamp per importer: with a stamp per archive, the second importer kept the old listing."""
    archive = tmp_path / "lib.zip"
    write_zip(archive, ["pkg/__init__.py", "pkg/a.py"], 10**18)
    top, sub = zipimport.zipimporter(str(archive)), zipimport.zipimporter(str(archive / "pkg"))
    top.invalidate_caches()
    sub.invalidate_caches()
    write_zip(archive, ["pkg/__init__.py", "pkg/a.py", "pkg/b.py"], 10**18 + 10**9)
    top.invalidate_caches()
    sub.invalidate_caches()
    assert sub.find_spec("b") is not None
    assert top.find_spec("pkg") is not None


def test_importers_of_one_archive_share_its_listing(directory_reads: list[str], tmp_path: Path) -> None:
    """About ten importers list pyspark.zip (one per package folder): one read per change serves them all."""
    archive = tmp_path / "lib.zip"
    write_zip(archive, ["pkg/__init__.py", "pkg/a.py"], 10**18)
    importers = [zipimport.zipimporter(str(archive / sub)) for sub in ("", "pkg", "pkg")]
    directory_reads.clear()
    for importer in importers:
        importer.invalidate_caches()
    assert directory_reads == [str(archive)]
    write_zip(archive, ["pkg/__init__.py", "pkg/a.py", "pkg/b.py"], 10**18 + 10**9)
    for importer in importers:
        importer.invalidate_caches()
    assert directory_reads == [str(archive)] * 2
    assert all(importer.find_spec("b") is not None for importer in importers[1:])


def test_a_deleted_archive_empties_its_listing(directory_reads: list[str], tmp_path: Path) -> None:
    archive = tmp_path / "lib.zip"
    write_zip(archive, ["pkg/__init__.py"], 10**18)
    importer = zipimport.zipimporter(str(archive))
    importer.invalidate_caches()
    archive.unlink()
    importer.invalidate_caches()
    assert importer.find_spec("pkg") is None


def test_this_python_still_reads_the_directory_on_invalidate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cost the patch removes: unpatched, invalidate_caches() re-reads the archive's directory at once.
    When a Python release stops doing so (3.12 did), this fails and the gate must leave that Python out."""
    if getattr(zipimport.zipimporter.invalidate_caches, "only_when_changed", False):
        pytest.fail("zipimport already patched in the test process: the patch leaked out of a worker")
    archive = tmp_path / "lib.zip"
    write_zip(archive, ["pkg/__init__.py"], 10**18)
    importer = zipimport.zipimporter(str(archive))
    reads: list[str] = []
    real = zipimport._read_directory  # type: ignore[attr-defined]
    monkeypatch.setattr(zipimport, "_read_directory", lambda a: reads.append(a) or real(a))
    importer.invalidate_caches()
    assert reads == [str(archive)]


def test_pyspark_worker_still_invalidates_import_caches_at_every_task() -> None:
    """The reason for the patch. When pyspark's worker stops doing this (SPARK-54744), drop the patch."""
    import pyspark.worker

    assert "importlib.invalidate_caches()" in inspect.getsource(pyspark.worker.main)


def _python_imports(code: str, **env: str) -> list[str]:
    """Run `code` in a fresh interpreter of this venv: the top-level modules it imported."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    environ = {k: v for k, v in os.environ.items() if k != internals.DISTUTILS_SETTING}
    done = subprocess.run(
        [sys.executable, "-c", script], env={**environ, **env}, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_pyspark_arrow_code_still_imports_distutils() -> None:
    """The reason for the worker setting: when pyspark stops importing distutils, drop it."""
    import pyspark.sql.pandas.types

    assert "from distutils.version import LooseVersion" in inspect.getsource(pyspark.sql.pandas.types)


def test_distutils_setting_serves_the_standard_library_without_setuptools() -> None:
    """What the setting relies on: by default `import distutils` imports setuptools (the 0.3 s per worker),
    with it the standard library's distutils serves pyspark's LooseVersion and setuptools stays out."""
    code = "from distutils.version import LooseVersion\nassert LooseVersion('15.0.1') > LooseVersion('2.0.0')"
    assert "setuptools" in _python_imports(code)
    ((name, value),) = internals.worker_environment().items()
    assert "setuptools" not in _python_imports(code, **{name: value})


@pytest.mark.parametrize(
    ("python", "pyspark_version", "setting"),
    [
        ((3, 11), "3.5.9", {"SETUPTOOLS_USE_DISTUTILS": "stdlib"}),
        ((3, 12), "3.5.9", {}),
        ((3, 11), "4.0.1", {}),
    ],
)
def test_distutils_setting_gate(
    python: tuple[int, int], pyspark_version: str, setting: dict[str, str]
) -> None:
    assert internals.worker_environment(python, pyspark_version) == setting


@pytest.mark.slow
def test_python_workers_of_the_job_session_get_the_distutils_setting() -> None:
    """The job's session passes it to every Python worker (spark.executorEnv), locally as on YARN."""
    probe = Path(__file__).with_name("session_probe.py")
    environ = {k: v for k, v in os.environ.items() if k != internals.DISTUTILS_SETTING}
    environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, str(probe)], env=environ, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["worker_env"] == internals.worker_environment() == {"SETUPTOOLS_USE_DISTUTILS": "stdlib"}


@pytest.mark.parametrize(
    ("python", "pyspark_version", "applies"),
    [
        ((3, 11), "3.5.9", True),
        ((3, 10), "3.5.0", True),
        ((3, 12), "3.5.9", False),
        ((3, 11), "4.0.1", False),
    ],
)
def test_zip_patch_gate(python: tuple[int, int], pyspark_version: str, applies: bool) -> None:
    assert internals.zipimport_patch_applies(python, pyspark_version) is applies


def test_written_for_this_pyspark() -> None:
    """Every py4j shortcut here was written against pyspark 3.5: a new series needs a look at each."""
    assert internals.pyspark_supported()


def test_input_files_in_one_call_equal_the_public_listing(spark: SparkSession, tmp_path: Path) -> None:
    for name in ("a.jpg", "sub/b c.png", "sub/deeper/d.txt", "empty.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"" if name == "empty.jpg" else b"x")
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(str(tmp_path))
    assert sorted(internals.input_files(files)) == sorted(files.inputFiles())
    assert len(internals.input_files(files)) == 4


def test_file_index_identities_equal_the_public_scan(spark: SparkSession, tmp_path: Path) -> None:
    """What the features store's lookup relies on: the file index's statuses, parsed from their text, give
    what a scan of binaryFile's path, length and modificationTime gives (and the empty files it skips)."""
    from pyspark.sql import functions as F

    for name in ("a.jpg", "sub/b c.png", "sub/deeper/d;x.txt", "empty.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"" if name == "empty.jpg" else b"x" * len(name))
    os.utime(tmp_path / "a.jpg", ns=(1_700_000_000_123_000_000, 1_700_000_000_123_000_000))
    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(str(tmp_path))
    listed = internals.file_index_identities(files)
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
    assert internals.parse_file_statuses(f"{s3a}\n{hdfs}") == [
        ("s3a://b/data/Training/Kiwi/a; b.jpg", 4719, 1796164263000),
        ("hdfs://nn:8020/x/y.png", 0, 17),
    ]
    assert internals.parse_file_statuses("") == []
    assert internals.parse_file_statuses(f"{hdfs}\nFileStatus{{path=/a; isDirectory=true; ...}}") is None


def test_file_index_identities_fall_back_on_what_they_cannot_read(spark: SparkSession) -> None:
    assert internals.file_index_identities(spark.range(3)) is None  # no file relation: the caller scans


def test_drained_listener_events_show_an_ended_job_as_ended(spark: SparkSession) -> None:
    """drain_listener_events relies on SparkContext.listenerBus().waitUntilEmpty: after it, the status
    tracker (fed by that bus) no longer lists a job that has ended, here one of many tasks."""
    assert spark.sparkContext.parallelize(range(80), 40).map(lambda x: x + 1).sum() == 3240
    assert internals.drain_listener_events(spark, timeout_s=30)
    assert list(spark.sparkContext.statusTracker().getActiveJobsIds()) == []


def test_pca_model_made_in_the_jvm_projects_like_its_matrix(spark: SparkSession) -> None:
    import numpy as np
    from pyspark.ml.linalg import DenseMatrix, DenseVector, Vectors

    components = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    matrix = DenseMatrix(3, 2, components.flatten(order="F").tolist())
    model = internals.pca_model(spark, matrix, DenseVector([0.6, 0.3]), k=2)
    model.setInputCol("x").setOutputCol("y")
    out = model.transform(spark.createDataFrame([(Vectors.dense([1.0, 1.0, 5.0]),)], ["x"])).first()
    assert list(out["y"]) == [1.0, 2.0] and model.getK() == 2
    assert list(model.explainedVariance) == [0.6, 0.3]


def _worker_pid(_: object) -> Iterator[int]:
    yield os.getpid()


def _sql_task_pids(spark: SparkSession, slots: int) -> set[int]:
    """The Python workers of a SQL map job like the featurize stage's (mapInArrow)."""

    def pids(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for _ in batches:
            yield pa.RecordBatch.from_pydict({"pid": [os.getpid()]})

    return {row.pid for row in spark.range(0, slots, 1, slots).mapInArrow(pids, "pid long").collect()}


@pytest.fixture
def fresh_pool(spark: SparkSession) -> Iterator[SparkSession]:
    """Jobs made inside get Python workers of their own: Spark keys worker pools by environment, and a
    function takes the context's environment when it is made. No idle worker of an earlier test is reused."""
    import uuid

    sc = spark.sparkContext
    sc.environment["FRUITS_TEST_POOL"] = uuid.uuid4().hex
    try:
        yield spark
    finally:
        del sc.environment["FRUITS_TEST_POOL"]


def test_the_stage_runs_in_the_workers_started_ahead(fresh_pool: SparkSession) -> None:
    """What start_python_workers is for: the SQL (mapInArrow) tasks after it take the workers it started
    (if not, each executor would hold twice the engines)."""
    started = internals.start_python_workers(fresh_pool, _worker_pid)
    assert started is not None
    ahead = set(started.done.result(timeout=300))
    sql_pids = _sql_task_pids(fresh_pool, fresh_pool.sparkContext.defaultParallelism)
    assert ahead and sql_pids & ahead
    if len(ahead) == len(sql_pids):  # as many started as the stage runs at once: it started none
        assert sql_pids == ahead


def test_without_the_sql_environment_rdd_workers_are_a_pool_of_their_own(fresh_pool: SparkSession) -> None:
    """The keying start_python_workers relies on: when RDD and SQL tasks share workers without the SQL
    runners' variable, sql_worker_environment is no longer needed; when they need more, the test above
    fails."""
    sc = fresh_pool.sparkContext
    saved = {
        name: sc.environment.pop(name) for name in [internals.SIMPLIFIED_TRACEBACK] if name in sc.environment
    }
    try:
        rdd_pids = set(sc.parallelize(range(2), 2).mapPartitions(_worker_pid).collect())
    finally:
        sc.environment.update(saved)
    assert rdd_pids.isdisjoint(_sql_task_pids(fresh_pool, sc.defaultParallelism))


def test_runners_configured_apart_share_no_worker_so_none_is_started(fresh_pool: SparkSession) -> None:
    key = "spark.sql.execution.pandas.udf.buffer.size"
    fresh_pool.conf.set(key, "131072")  # SQL workers get SPARK_BUFFER_SIZE=131072, RDD workers 65536
    try:
        assert internals.sql_worker_environment(fresh_pool) is None
        assert internals.start_python_workers(fresh_pool, _worker_pid) is None
    finally:
        fresh_pool.conf.unset(key)
    assert internals.sql_worker_environment(fresh_pool) == {"SPARK_SIMPLIFIED_TRACEBACK": "1"}


def test_without_simplified_tracebacks_neither_runner_sets_the_variable(fresh_pool: SparkSession) -> None:
    fresh_pool.conf.set(internals.SQL_SIMPLIFIED_TRACEBACK, "false")
    try:
        started = internals.start_python_workers(fresh_pool, _worker_pid)
        assert started is not None
        ahead = set(started.done.result(timeout=300))
        assert internals.SIMPLIFIED_TRACEBACK not in fresh_pool.sparkContext.environment
        assert _sql_task_pids(fresh_pool, fresh_pool.sparkContext.defaultParallelism) & ahead
    finally:
        fresh_pool.conf.unset(internals.SQL_SIMPLIFIED_TRACEBACK)


def test_a_cancelled_start_up_ends_its_job(fresh_pool: SparkSession, tmp_path: Path) -> None:
    """What a stage that fails before its first task does with the start-up job (featurize.start_stage)."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)

    def held(_: object) -> Iterator[int]:
        with gate.open() as blocked:  # opening a FIFO nobody writes to blocks: the job runs until cancelled
            blocked.read()
        yield os.getpid()

    started = internals.start_python_workers(fresh_pool, held)
    assert started is not None
    started.cancel(fresh_pool)
    assert started.done.done()
    assert "cancel" in str(started.done.exception()).lower()
