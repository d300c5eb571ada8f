"""features/ of a store run: one row per listed photo, from the store, without moving what need not move.

A store file is ~1,000 photos of one run's task. When every row of a file is wanted, as listed (same
identity, the newest version, the same label), the file is copied into features/ whole, on the executors
(on S3 a server-side copy). Only the rows of other files (a photo rewritten or deleted since, two rows of
one photo, another label) are joined with the listing and written. A run over a store that holds the
collection once, with 10% new photos, copies every file and joins nothing.

Measured (`make bench-scale`, 80,000 photos, 2026-12-07, docs/performance.md): the join of every row cost
0.21 s per 1,000 photos on 2 cores, as much as the PCA and the projection together.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_job.driver.featurize import FEATURES_DIR
from spark_job.driver.storage import join
from spark_job.driver.store import FILE_SCHEMA, same_file
from spark_job.workers.files import COPIED_DDL, copy_whole_files

log = logging.getLogger(__name__)

# Store files copied per task: each copy is one request on S3, READ_THREADS of them in flight per task.
FILES_PER_COPY_TASK = 200


def assemble_features(spark: SparkSession, stored: DataFrame, listed: DataFrame, output: str) -> int:
    """Write <output>/features with one row per listed photo the store holds (path, length,
    modification_time, label as listed, features) and return how many rows it holds.

    `stored`: the store's rows as read; `listed`: path, length, modification_ms, label. Of two stored
    rows of one photo the newest is kept, then the first file by name (the same choice as compaction's,
    spark_job.driver.store.chosen_rows)."""
    tagged = stored.withColumn("_file", F.input_file_name())  # taken at the scan
    ids = tagged.select("path", "length", "modification_time", "_file", F.col("label").alias("_stored_label"))
    matched = ids.join(listed, same_file(listed, ids)).select(
        ids["path"], ids["modification_time"], ids["_file"], ids["_stored_label"], listed["label"]
    )
    newest_first = Window.partitionBy("path").orderBy(F.desc("modification_time"), F.asc("_file"))
    chosen = (
        matched.withColumn("_rank", F.row_number().over(newest_first))
        .where("_rank = 1")
        .drop("_rank", "modification_time")
        .persist(StorageLevel.MEMORY_AND_DISK)  # ~100 bytes per photo, on the executors
    )
    kept_as_stored = F.sum(F.when(F.col("label").eqNullSafe(F.col("_stored_label")), 1).otherwise(0))
    wanted = chosen.groupBy("_file").agg(F.count("*").alias("wanted"), kept_as_stored.alias("as_stored"))
    files = (
        ids.groupBy("_file")
        .agg(F.count("*").alias("rows"))
        .join(wanted, "_file")
        .withColumn("whole", (F.col("rows") == F.col("wanted")) & (F.col("rows") == F.col("as_stored")))
        .persist(StorageLevel.MEMORY_AND_DISK)  # one row per store file
    )
    features_dir = join(output, FEATURES_DIR)
    partial = files.where(~F.col("whole")).select("_file")
    whole = files.where(F.col("whole")).select(F.col("_file").alias("file"), "rows")
    try:
        if not partial.isEmpty() or whole.isEmpty():
            rows = (
                tagged.drop("label")
                .join(partial, "_file", "left_semi")  # the whole files' rows are neither shuffled nor written
                .join(chosen.select("path", "_file", "label"), ["path", "_file"])
                .select(*FILE_SCHEMA.fieldNames())
            )
            rows.write.mode("overwrite").parquet(features_dir)
        n_files = whole.count()
        if n_files:
            tasks = max(1, -(-n_files // FILES_PER_COPY_TASK))
            copied = whole.repartition(tasks).mapInArrow(copy_whole_files(features_dir), COPIED_DDL)
            total = copied.agg(F.sum("rows")).first()
            n_copied = total[0] if total is not None else 0
            log.info("features/: %d store files copied whole (%d photos)", n_files, n_copied)
    finally:
        chosen.unpersist()
        files.unpersist()
    return spark.read.parquet(features_dir).count()  # the files' footers: no column read
