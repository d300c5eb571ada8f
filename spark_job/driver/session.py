"""The SparkSession of a run: local defaults, and the settings the job needs under any master.

On EMR the cluster's spark-defaults (stacks/spark_settings.py) size the executors and start the JVMs; what
is set here for every master is what the job depends on (worker reuse, file packing, Arrow batches).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from spark_job.driver.config import DEFAULT_BATCH_SIZE, JobConfig

# The local driver JVM (it also runs the executors' tasks in local mode) with the quick compiler only: it
# lists, reads small files and writes Parquet, and its optimizing compiler (C2) takes CPU from the Python
# workers on a small machine: 8,000 images at 397-403 img/s with C2 against 439-444 with C1 alone (LiteRT,
# 2 vCPUs, 2026-12-02). A public JVM option, set only when this session starts the JVM: never on EMR.
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


def spark_session(cfg: JobConfig) -> SparkSession:
    return build_session(f"fruits-{cfg.mode}", cfg.master, cfg.batch_size)


def build_session(app_name: str, master: str | None, batch_size: int = DEFAULT_BATCH_SIZE) -> SparkSession:
    from pyspark import SparkConf

    builder = SparkSession.builder.appName(app_name)
    under_spark_submit = SparkConf().contains("spark.master")
    if master:
        builder = builder.master(master)
    elif not under_spark_submit:
        builder = builder.master("local[*]")
    if not under_spark_submit:
        # Local runs: Python workers use this interpreter (the venv), not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.driver.extraJavaOptions", LOCAL_JVM_OPTIONS)
    # Each Python worker keeps its engine across tasks (spark_job.workers.engines.worker_engine) only when
    # reused.
    builder = builder.config("spark.python.worker.reuse", "true")
    # Fruits-360 images are ~5 KB: with the default 4 MB open cost Spark packs only ~32 files in a task, and
    # each task has a fixed cost (~0.1 s here: JVM and Python worker turnaround, one Parquet file). 256 KB
    # packs ~500 per task: still hundreds of tasks on the full dataset (balance), and on small inputs Spark
    # splits down to one task per core anyway.
    builder = builder.config("spark.sql.files.openCostInBytes", str(256 << 10))
    # Arrow batches of one inference batch: the Python worker starts on the first images while the JVM
    # still reads the task's other files (one Arrow batch per task would make it wait for all of them).
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    return builder.getOrCreate()


@contextmanager
def sql_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """A SQL setting for the statements inside only (read when a query is planned), then put back."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
