"""Listing the input on the executors: one task lists the input folder's top level, then its folders (the
classes) are listed recursively in up to one task per core, with pyarrow in the Python workers
(spark_job.workers.files). The driver holds only the top-level folders' names and counts: no list of
paths, and no Spark file index (which keeps a status per file on the driver).

The listing is a DataFrame kept for the run (persisted on the executors, memory then disk): the featurize
stage reads the new images' bytes from it, the store lookup joins it, the rejects and the manifest's
counts are aggregates of it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_job.contract.errors import JobInputError
from spark_job.contract.names import IMAGE_EXTENSIONS
from spark_job.driver.storage import Storage, normalize
from spark_job.workers.files import ENTRIES_DDL, listing

log = logging.getLogger(__name__)

IMAGE_PATTERN = re.compile(r"\.(" + "|".join(IMAGE_EXTENSIONS) + r")$")
# The manifest lists the first non-image files by name (all are counted).
SKIPPED_FILES_LISTED = 100


@dataclass(frozen=True)
class Inputs:
    qualified: str  # the input folder as Spark spells paths (file:/..., s3://...)
    images: DataFrame  # every JPEG/PNG (empty ones too): path, length, modification_ms, label; persisted
    n_images: int
    n_skipped: int  # non-image files, counted apart
    skipped_sample: list[str]  # the first SKIPPED_FILES_LISTED of them, by path
    listed: DataFrame  # every file listed, persisted: what `images` is made from

    def release(self) -> None:
        """Drop the persisted listing (the run is over)."""
        self.listed.unpersist()


def is_image(path: Column) -> Column:
    """JPEG or PNG by extension, case-insensitive."""
    return F.lower(path).rlike(IMAGE_PATTERN.pattern)


def label_of(qualified_input: str) -> Column:
    """The label of the `path` column: the first folder under the input (null for files directly in it: a
    flat folder)."""
    prefix_len = len(qualified_input.rstrip("/")) + 1
    relative = F.expr(f"substring(path, {prefix_len + 1})")
    return F.when(F.instr(relative, "/") > 0, F.substring_index(relative, "/", 1))


def with_label(files: DataFrame, qualified_input: str) -> DataFrame:
    """label = the first folder under the input (null for files directly in it: a flat folder)."""
    return files.withColumn("label", label_of(qualified_input))


def require_input_folder(storage: Storage, input_uri: str) -> str:
    uri = normalize(input_uri)
    if not storage.exists(uri):
        raise JobInputError(f"input not found: {input_uri}")
    if not storage.is_dir(uri):
        raise JobInputError(f"input must be a folder (or prefix) of images: {input_uri}")
    return uri


def _listing_of(spark: SparkSession, folders: list[str], root: str | None, recursive: bool) -> DataFrame:
    """The folders listed in up to one task per core: path, length, modification_ms, is_folder."""
    # Folders share tasks: a task costs more than listing a folder of thousands of files (8,000 photos in
    # 12 folders on 2 cores: 12 tasks 1.6 s, 2 tasks 0.7 s). From an RDD, not a range of literals: its
    # plan never equals an earlier listing's, whose persisted rows Spark's cache would serve instead.
    slices = max(1, min(len(folders), spark.sparkContext.defaultParallelism))
    rows = spark.sparkContext.parallelize([(folder,) for folder in folders], slices)
    seeds = spark.createDataFrame(rows, "folder string")
    return seeds.mapInArrow(listing(root, recursive), ENTRIES_DDL)


def folder_files(spark: SparkSession, folders: list[str]) -> DataFrame:
    """The files directly in each of `folders` (no descent), each folder its own root: path, length,
    modification_ms. What the store's compaction checks its rows against."""
    return _listing_of(spark, folders, None, False).where(~F.col("is_folder")).drop("is_folder")


def discover(spark: SparkSession, storage: Storage, input_uri: str) -> Inputs:
    """List the input once, on the executors (no image read); fail when there is no image."""
    root = storage.qualified(require_input_folder(storage, input_uri))
    top = _listing_of(spark, [root], root, False).persist(StorageLevel.MEMORY_AND_DISK)
    # The top level's folders (the classes): only their names come to the driver, to list each in a task.
    subfolders = [row["path"] for row in top.where("is_folder").select("path").collect()]
    files = top.where(~F.col("is_folder"))
    if subfolders:
        files = files.unionByName(_listing_of(spark, subfolders, root, True))
    files = files.drop("is_folder").withColumn("is_image", is_image(F.col("path")))
    files = files.persist(StorageLevel.MEMORY_AND_DISK)
    counts = files.agg(
        F.count_if(F.col("is_image")).alias("images"), F.count_if(~F.col("is_image")).alias("skipped")
    ).first()
    top.unpersist()  # its rows are in `files` now
    assert counts is not None
    n_skipped = int(counts["skipped"])
    skipped = files.where(~F.col("is_image")).select("path").orderBy("path").limit(SKIPPED_FILES_LISTED)
    inputs = Inputs(
        qualified=root,
        images=with_label(files.where("is_image").drop("is_image"), root),
        n_images=int(counts["images"]),
        n_skipped=n_skipped,
        skipped_sample=[row["path"] for row in skipped.collect()] if n_skipped else [],
        listed=files,
    )
    log.info(
        "listed %s: %d image files, %d other files skipped", input_uri, inputs.n_images, inputs.n_skipped
    )
    if not inputs.n_images:
        inputs.release()
        raise JobInputError(f"no JPEG or PNG images under {input_uri} ({inputs.n_skipped} other files)")
    return inputs
