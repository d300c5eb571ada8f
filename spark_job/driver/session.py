"""The SparkSession of a run: local defaults, and the settings the job needs under any master.

On EMR the cluster's spark-defaults (stacks/spark_settings.py) size the executors and start the JVMs; what
is set here for every master is what the job depends on (worker reuse, Arrow batches).
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
# The local JVM's heap: a quarter of the machine's memory, between 1 and 8 GiB. In local mode this one JVM
# is the driver and every executor task (Parquet writers, shuffles, the store's joins), and Spark's default
# of 1 GiB leaves the tasks of a 2-core run ~300 MB (docs/performance.md has the measured peaks).
LOCAL_HEAP_SHARE = 0.25
LOCAL_HEAP_MIN_MIB, LOCAL_HEAP_MAX_MIB = 1024, 8192


def local_driver_memory(physical_bytes: int | None = None) -> str:
    """spark.driver.memory for a local run on a machine of `physical_bytes` (default: this one)."""
    if physical_bytes is None:
        physical_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    mib = int(physical_bytes * LOCAL_HEAP_SHARE) >> 20
    return f"{min(max(mib, LOCAL_HEAP_MIN_MIB), LOCAL_HEAP_MAX_MIB)}m"


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
        builder = builder.config("spark.driver.memory", local_driver_memory())
    # Each Python worker keeps its engine across tasks (spark_job.workers.engines.worker_engine) only when
    # reused.
    builder = builder.config("spark.python.worker.reuse", "true")
    # Arrow batches of one inference batch: a task's Python worker reads and infers batch by batch, the next
    # batch's files read while this one is inferred (spark_job.workers.files.prefetched).
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
