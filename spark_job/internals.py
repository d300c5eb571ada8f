"""Every private pyspark API and every patch of Python the job uses, in one place, each gated and tested.

Each entry says what it relies on, why it pays (measured) and the versions it was written for. Outside
those versions a patch is not applied and a py4j shortcut falls back to the public API where one exists;
where none exists (the Hadoop FileSystem, the PCAModel constructor) it is used with a warning. Each has a
guard test in tests/job/test_internals.py that fails when the behaviour it relies on changes.

Dropped with the move to a map function (mapInPandas, now mapInArrow) and LiteRT (issue #15): the
`_accumulatorRegistry` lookups and the closure that made cloudpickle ship accumulators (predict_batch_udf's
ModelCache kept one closure across tasks; a map function is shipped per task, so plain accumulators work)
and `.asNondeterministic()` (a map node is never inlined twice). The worker start-up job
(start_python_workers) came back, measured again with LiteRT: see its docstring.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyspark

if TYPE_CHECKING:
    from pyspark.ml.feature import PCAModel
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# The versions these were written and measured for.
PYSPARK_SERIES = "3.5."
# CPython 3.10-3.11 re-read a zip's whole directory in zipimporter.invalidate_caches(); 3.12 (gh-103200)
# only drops its cache, and the next lookup re-reads the archive lazily.
ZIPIMPORT_PYTHONS = ((3, 10), (3, 11))


def pyspark_supported(version: str | None = None) -> bool:
    return (version or pyspark.__version__).startswith(PYSPARK_SERIES)


def _first_line(exc: BaseException) -> str:
    """An exception's first line, for a log line (py4j errors carry the whole Java stack)."""
    return (str(exc).splitlines() or [repr(exc)])[0][:200]


def _warn_unsupported(what: str) -> None:
    log.warning(
        "%s relies on pyspark %s* internals; this is pyspark %s", what, PYSPARK_SERIES, pyspark.__version__
    )


# ---------------------------------------------------------------------------------------------------------
# Python worker: the zipimport patch
# ---------------------------------------------------------------------------------------------------------


def zipimport_patch_applies(
    python: tuple[int, int] | None = None, pyspark_version: str | None = None
) -> bool:
    return (python or sys.version_info[:2]) in ZIPIMPORT_PYTHONS and pyspark_supported(pyspark_version)


def speed_up_worker_imports() -> bool:
    """Make zipimporter.invalidate_caches() re-read an archive only when the file changed on disk.

    pyspark 3.5's worker calls importlib.invalidate_caches() at every task (SPARK-54744 stops that after
    3.5), and on CPython 3.10-3.11 that re-reads the directory of every zip imported from (pyspark.zip,
    py4j, the job's --py-files zip): 16 ms per task standalone, 40-170 ms in loaded Spark workers, against
    0.1-0.2 ms patched (measured 2026-12-01, 2 vCPUs). Several importers (one per package folder: about ten
    for pyspark.zip) list the same archive; each re-read its whole directory. So the last listing read of
    each archive is kept with the archive's stamp (mtime, size, inode, ctime; taken before the read): an
    importer whose archive still has that stamp takes that listing, without a read; after a change the
    first importer reads it again and every other one takes the new listing. Returns whether the patch is
    active.
    """
    import zipimport

    if not zipimport_patch_applies():
        return False
    original = zipimport.zipimporter.invalidate_caches
    if getattr(original, "only_when_changed", False):
        return True
    last_read: dict[str, tuple[tuple[int, ...], Any]] = {}  # archive -> (stamp, its listing as then read)

    def invalidate_caches(self: zipimport.zipimporter) -> None:
        try:
            info = Path(self.archive).stat()
            # A file put back with the same mtime and size (cp -p, rsync -t) is a new inode or a new ctime.
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_ctime_ns)
        except OSError:  # gone or unreadable: the original decides (it empties the listing)
            original(self)
            last_read.pop(self.archive, None)
            return
        known = last_read.get(self.archive)
        if known is not None and known[0] == stamp:
            self._files = known[1]  # type: ignore[attr-defined]
            return
        original(self)
        last_read[self.archive] = (stamp, self._files)  # type: ignore[attr-defined]

    invalidate_caches.only_when_changed = True  # type: ignore[attr-defined]
    zipimport.zipimporter.invalidate_caches = invalidate_caches  # type: ignore[method-assign]
    importlib.invalidate_caches()  # each archive read once now, where it costs least (worker start-up)
    return True


# ---------------------------------------------------------------------------------------------------------
# Python worker: distutils from the standard library
# ---------------------------------------------------------------------------------------------------------

# CPython 3.11 still ships distutils (3.12 removed it: PEP 632).
STDLIB_DISTUTILS_PYTHONS = ((3, 10), (3, 11))
DISTUTILS_SETTING = "SETUPTOOLS_USE_DISTUTILS"


def worker_environment(
    python: tuple[int, int] | None = None, pyspark_version: str | None = None
) -> dict[str, str]:
    """Environment variables for the Python workers (spark.executorEnv.*).

    pyspark 3.5's Arrow code imports `distutils.version.LooseVersion` in every Python worker's first Arrow
    task. The runtime has setuptools (a dependency of TensorFlow's keras), whose distutils-precedence.pth
    serves `import distutils` from setuptools: that imports all of setuptools, which reads its own version
    from the installed metadata: 0.3 s per worker (profiled 2026-12-01, 2 vCPUs). setuptools' documented
    setting SETUPTOOLS_USE_DISTUTILS=stdlib, read when a Python starts, serves the standard library's
    distutils instead: its LooseVersion is the same class. Only where the standard library has distutils.
    """
    applies = (python or sys.version_info[:2]) in STDLIB_DISTUTILS_PYTHONS and pyspark_supported(
        pyspark_version
    )
    return {DISTUTILS_SETTING: "stdlib"} if applies else {}


# ---------------------------------------------------------------------------------------------------------
# Driver: the Python workers started while the driver lists
# ---------------------------------------------------------------------------------------------------------

# What pyspark 3.5's SQL Python runners (mapInArrow and mapInPandas among them) add to a worker's
# environment when spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled is true (the default), and
# its RDD runner does not (BasePythonRunner.compute).
SIMPLIFIED_TRACEBACK = "SPARK_SIMPLIFIED_TRACEBACK"
SQL_SIMPLIFIED_TRACEBACK = "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled"
# Settings the two runners read from different keys, each becoming a worker environment variable
# (SQL key, RDD key, default): when they differ, no RDD worker can serve a SQL task.
RUNNER_SETTINGS = (
    (
        "spark.sql.execution.pyspark.udf.faulthandler.enabled",
        "spark.python.worker.faulthandler.enabled",
        "false",
    ),
    ("spark.sql.execution.pandas.udf.buffer.size", "spark.buffer.size", "65536"),
)


def sql_worker_environment(spark: SparkSession) -> dict[str, str] | None:
    """The variables that put an RDD job's Python workers in the pool of this session's SQL tasks, or None
    when the two runners' settings differ (then they can share no worker)."""
    conf = spark.sparkContext.getConf()
    for sql_key, rdd_key, default in RUNNER_SETTINGS:
        rdd_value = conf.get(rdd_key, default)
        if spark.conf.get(sql_key, rdd_value) != rdd_value:
            return None
    simplified = str(spark.conf.get(SQL_SIMPLIFIED_TRACEBACK, "true")).lower() == "true"
    return {SIMPLIFIED_TRACEBACK: "1"} if simplified else {}


@dataclass
class StartedWorkers:
    """The background job of start_python_workers."""

    done: Future[list[int]]  # what `start` yielded, once the job is done
    group: str  # its Spark job group

    def cancel(self, spark: SparkSession) -> None:
        """Stop it (the stage failed before its first task): no job is left running after the stage. Asked
        again each second, in case the job was submitted after the first ask."""
        for _ in range(CANCEL_WAIT_S):
            spark.sparkContext.cancelJobGroup(self.group)
            try:
                self.done.result(timeout=1)
            except TimeoutError:
                continue
            except Exception:  # cancelled, as asked
                log.debug("worker start-up job cancelled")
            return
        log.warning("the worker start-up job %s did not stop in %d s", self.group, CANCEL_WAIT_S)


CANCEL_WAIT_S = 60


def start_python_workers(
    spark: SparkSession, start: Callable[[Iterable[int]], Iterator[int]]
) -> StartedWorkers | None:
    """Start the Python workers of every task slot now, in a background job, each running `start` (the
    featurize stage's engine start-up): the stage's first tasks then take started workers.

    A fresh local run spends ~1.3 s in the JVM (listing, planning the stage's query) before its first
    Python task, and its first tasks then start a worker each: the daemon 0.35 s, then per worker its imports
    (~0.6 s with pandas; ~0.1 s since mapInArrow) and engine (0.04 s, LiteRT). Run alongside, on the other
    core, that start-up saved ~0.4 s of a 2,000-image featurize stage (measured 2026-12-02, local[2]). It is
    an RDD job: a SQL map job (measured with mapInPandas) waited for its own planning in the cold JVM, as
    long as the stage's.

    Relies on: a Python worker is reused only by tasks whose runner asks for the same Python executable and
    environment (SparkEnv's worker factories are keyed by both), and the SQL runners add
    SIMPLIFIED_TRACEBACK (sql_worker_environment). So the context's environment gets the same, or these
    workers would idle in a pool of their own while the stage starts new ones (twice the engines in an
    executor's memory). Guard tests: the stage's tasks run in the processes this started, and without the
    variable they would not. Nothing is started outside pyspark 3.5 or when the runners' settings differ
    (None). The job's RDD workers then simplify tracebacks as its UDF workers do.
    """
    if not pyspark_supported():
        return None
    environment = sql_worker_environment(spark)
    if environment is None:
        log.info("SQL and RDD Python workers are configured apart: no worker start-up ahead of the stage")
        return None
    sc = spark.sparkContext
    sc.environment.pop(SIMPLIFIED_TRACEBACK, None)
    sc.environment.update(environment)
    slots = sc.defaultParallelism
    started = StartedWorkers(Future(), f"fruits-start-python-workers-{uuid.uuid4().hex[:8]}")

    def run() -> None:
        sc.setJobGroup(started.group, "starting the Python workers ahead of the featurize stage")
        try:
            started.done.set_result(sc.parallelize(range(slots), slots).mapPartitions(start).collect())
        except Exception as exc:  # the stage starts its own workers; a failure here loses only time
            log.info("starting the Python workers ahead stopped: %s", _first_line(exc))
            started.done.set_exception(exc)

    threading.Thread(target=run, name="fruits-start-python-workers", daemon=True).start()
    return started


# ---------------------------------------------------------------------------------------------------------
# Driver: py4j access to the JVM
# ---------------------------------------------------------------------------------------------------------


def jvm(spark: SparkSession) -> Any:
    """py4j's view of the driver JVM (untyped). No public API reaches Hadoop's FileSystem from Python."""
    if not pyspark_supported():
        _warn_unsupported("SparkContext._jvm")
    gateway = spark.sparkContext._jvm
    assert gateway is not None  # a live session's context
    return gateway


def drain_listener_events(spark: SparkSession, timeout_s: float = 10.0) -> bool:
    """Wait until every event posted so far has reached Spark's listeners: True, else False (the timeout, or
    not pyspark 3.5). For checks of the status tracker, whose job states arrive through the asynchronous
    listener bus: an action's job can have ended while the tracker still lists it as active (seen once in
    a clean-clone CI, 2026-12-02: a 40-task job still active in a test's teardown). Relies on
    SparkContext.listenerBus().waitUntilEmpty(ms), private[spark] in Scala and public to py4j."""
    if not pyspark_supported():
        return False
    try:
        spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(int(timeout_s * 1000))
    except Exception as exc:  # py4j: a TimeoutException, or a renamed method
        log.warning("Spark's listener bus not drained (%s)", _first_line(exc))
        return False
    return True


def hadoop_configuration(spark: SparkSession) -> Any:
    """The session's Hadoop Configuration (JVM object): what S3A and the local FS are configured with."""
    return spark.sparkContext._jsc.hadoopConfiguration()


def input_files(files: DataFrame) -> list[str]:
    """DataFrame.inputFiles(), in one py4j call: the public method iterates the Java array with a round trip
    per file (0.76 s per 8,000 files here, against 0.08 s joined in the JVM; ~8 s on the full dataset)."""
    if not pyspark_supported():
        return list(files.inputFiles())
    # Hadoop's join takes String[] as such; py4j matches no Object[] overload of String.join.
    hadoop_util = jvm(files.sparkSession).org.apache.hadoop.util
    joined = str(hadoop_util.StringUtils.join("\n", files._jdf.inputFiles()))
    return joined.split("\n") if joined else []


# Hadoop's FileStatus.toString(): "LocatedFileStatus{path=<path>; isDirectory=false; length=<n>; ...;
# modification_time=<ms>; ..." (Hadoop 3.3-3.4, the versions pyspark 3.5 and EMR 7 ship).
_FILE_STATUS = re.compile(
    r"^\w+\{path=(?P<path>.*); isDirectory=false; length=(?P<length>\d+); "
    r"(?:.*?; )?modification_time=(?P<mtime>-?\d+); "
)


def file_index_identities(files: DataFrame) -> list[tuple[str, int, int]] | None:
    """(path, length, modification time in ms) of every file a file-source DataFrame lists, from the
    FileStatus list its InMemoryFileIndex holds since it was made: one py4j call, no file touched.

    The public way is a scan of binaryFile's path, length and modificationTime: a Spark job whose tasks call
    getFileStatus on every file (a HEAD request per object on S3), ~1 s per 8,000 files in a fresh JVM here
    against 0.07 s (measured 2026-12-01, local[2]). The path is spelled as binaryFile's `path` column spells
    it (Path.toString()). None when this is not pyspark 3.5, the plan is not one file relation, or a status
    does not parse: callers then scan.
    """
    if not pyspark_supported():
        return None
    try:
        relation = files._jdf.queryExecution().analyzed().collectLeaves()
        if relation.size() != 1:
            return None
        statuses = str(relation.head().relation().location().allFiles().mkString("\n"))
    except Exception as exc:  # py4j: a renamed class or method
        log.warning("file index not readable (%s): scanning the listing instead", exc)
        return None
    return parse_file_statuses(statuses)


def parse_file_statuses(text: str) -> list[tuple[str, int, int]] | None:
    """FileStatus.toString() lines -> (path, length, modification ms); None if any line does not parse."""
    out = []
    for line in text.split("\n") if text else []:
        match = _FILE_STATUS.match(line)
        if match is None:  # a new format, or a path with a line break in it
            log.warning("unexpected FileStatus text %r: scanning the listing instead", line[:200])
            return None
        out.append((match["path"], int(match["length"]), int(match["mtime"])))
    return out


def pca_model(spark: SparkSession, components: Any, explained: Any, k: int) -> PCAModel:
    """A Spark ML PCAModel from a DenseMatrix of components and a DenseVector of explained variance.

    pyspark has no public constructor: the model is made in the JVM and wrapped, as PCA.fit does.
    """
    from pyspark.ml.common import _py2java  # pyspark's Python -> Java conversion of ML linalg values
    from pyspark.ml.feature import PCAModel

    if not pyspark_supported():
        _warn_unsupported("PCAModel construction")
    sc = spark.sparkContext
    gateway = jvm(spark)
    uid = gateway.org.apache.spark.ml.util.Identifiable.randomUID("pca")
    java_model = gateway.org.apache.spark.ml.feature.PCAModel(
        uid, _py2java(sc, components), _py2java(sc, explained)
    )
    model = PCAModel(java_model)
    model._transfer_params_from_java()
    model._set(k=k)  # the JVM model has no k of its own: PCA.fit sets it the same way
    return model
