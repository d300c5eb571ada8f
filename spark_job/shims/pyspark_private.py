"""Every private pyspark API the job uses, in one place, each gated on the pyspark it was written for and
guard-tested (tests/job/test_pyspark_private.py fails when the behaviour it relies on changes):

- the Hadoop FileSystem gateway (`SparkContext._jvm`, `_jsc`): no public API reaches Hadoop's FileSystem
  from Python, and the job reads and writes small files (manifest, model records, weights) through it, on
  a local disk and on S3 alike (spark_job.driver.storage);
- the `PCAModel` constructor: pyspark has none, and the job's PCA comes from its own eigendecomposition
  (spark_job.driver.reduce);
- the file index's statuses: every listed file's path, length and modification time in one py4j call
  instead of a Spark job (spark_job.driver.listing).

They were written on pyspark 3.5 and checked again on 4.1 (the Spark of emr-spark-8.1.0, in classic mode:
`_jvm` and `_jsc` are there; tests/job/test_pyspark_private.py runs on both venvs, `make test`). Outside those
two series (4.0 was never tested) the file index falls back to the public scan; the other two have no public
alternative and are used with a warning.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import pyspark

if TYPE_CHECKING:
    from pyspark.ml.feature import PCAModel
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# The series these were written for (3.5, emr-7.x) and checked on (4.1, emr-spark-8.1.0), each guard test
# passing on both. A new series is added only once they pass on it (docs/development.md).
PYSPARK_SERIES = ("3.5.", "4.1.")


def pyspark_supported(version: str | None = None) -> bool:
    return (version or pyspark.__version__).startswith(PYSPARK_SERIES)


def _warn_unsupported(what: str) -> None:
    log.warning(
        "%s relies on pyspark %s internals; this is pyspark %s",
        what,
        " or ".join(f"{series}*" for series in PYSPARK_SERIES),
        pyspark.__version__,
    )


def jvm(spark: SparkSession) -> Any:
    """py4j's view of the driver JVM (untyped). No public API reaches Hadoop's FileSystem from Python."""
    if not pyspark_supported():
        _warn_unsupported("SparkContext._jvm")
    gateway = spark.sparkContext._jvm
    assert gateway is not None  # a live session's context
    return gateway


def hadoop_configuration(spark: SparkSession) -> Any:
    """The session's Hadoop Configuration (JVM object): what S3A and the local FS are configured with."""
    return spark.sparkContext._jsc.hadoopConfiguration()


# Hadoop's FileStatus.toString(): "LocatedFileStatus{path=<path>; isDirectory=false; length=<n>; ...;
# modification_time=<ms>; ..." (Hadoop 3.3-3.4, the versions pyspark 3.5 and 4.1 and EMR 7 and 8 ship).
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
    it (Path.toString()). None when this is not pyspark 3.5 or 4.1, the plan is not one file relation, or a
    status does not parse: callers then scan.
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
