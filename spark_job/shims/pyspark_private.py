"""Every private pyspark API the job uses, in one place, gated on the pyspark series it was written on
(3.5) and checked on (4.1, classic mode), and guard-tested on both (tests/job/test_pyspark_private.py):
the Hadoop FileSystem gateway (`_jvm`, `_jsc`; spark_job.driver.storage) and the `PCAModel` constructor
(spark_job.driver.reduce). Neither has a public alternative; outside those series, a warning.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pyspark

if TYPE_CHECKING:
    from pyspark.ml.feature import PCAModel
    from pyspark.sql import SparkSession

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
