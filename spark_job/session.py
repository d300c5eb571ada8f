"""The SparkSession of a run: local defaults, and the settings the job needs under any master.

On EMR the cluster's spark-defaults (stacks/spark_settings.py) size the executors; what is set here holds
for every master because the job depends on it (worker reuse, file packing, Arrow batches).
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from spark_job import internals, jvm_classes
from spark_job.config import DEFAULT_BATCH_SIZE, JobConfig


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
        # This session starts the JVM: the quick compiler only, and the class archive once it is made.
        builder = builder.config("spark.driver.extraJavaOptions", jvm_classes.local_jvm_options())
    # Each Python worker keeps its engine across tasks (spark_job.engine.worker_engine) only when reused.
    builder = builder.config("spark.python.worker.reuse", "true")
    # Fruits-360 images are ~5 KB: with the default 4 MB open cost Spark packs only ~32 files in a task, and
    # each task has a fixed cost (~0.1 s here: JVM and Python worker turnaround, one Parquet file). 256 KB
    # packs ~500 per task: still hundreds of tasks on the full dataset (balance), and on small inputs Spark
    # splits down to one task per core anyway.
    builder = builder.config("spark.sql.files.openCostInBytes", str(256 << 10))
    # Arrow batches of one inference batch: the Python worker starts on the first images while the JVM
    # still reads the task's other files (one Arrow batch per task would make it wait for all of them).
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    for name, value in internals.worker_environment().items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    return builder.getOrCreate()
