"""Listing the input: every file under the input folder, once, on the driver, through Spark's file index.

The listing is reused by the featurize stage (its binaryFile DataFrame) and by the rejects accounting (every
image listed that has no features gets a reason).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession

from spark_job.contract.errors import JobInputError
from spark_job.contract.names import IMAGE_EXTENSIONS
from spark_job.driver.session import sql_conf
from spark_job.driver.storage import Storage, normalize
from spark_job.shims import pyspark_private

log = logging.getLogger(__name__)

IMAGE_PATTERN = re.compile(r"\.(" + "|".join(IMAGE_EXTENSIONS) + r")$")


@dataclass(frozen=True)
class Inputs:
    qualified: str  # the input folder as Spark spells it in binaryFile's path column (file:/..., s3://...)
    files: DataFrame  # binaryFile over the input: listed once, reused by the featurize stage
    image_paths: list[str]  # every JPEG/PNG found, empty ones included, as binaryFile's path column
    skipped: list[str]  # non-image files, counted apart
    # path -> (length, modification time in ms) of every image, as listed; None when the file index could
    # not be read (pyspark_private.file_index_identities), and the features store scans for them instead.
    identities: dict[str, tuple[int, int]] | None = None

    @property
    def images(self) -> int:
        return len(self.image_paths)


def is_image_path(path: str) -> bool:
    """JPEG or PNG by extension, case-insensitive."""
    return IMAGE_PATTERN.search(path.lower()) is not None


def binary_files(spark: SparkSession, input_uri: str) -> DataFrame:
    """Every file under input_uri, recursively: path, modificationTime, length, content (read lazily).

    Spark's file source leaves out hidden files and folders (names starting with '_' or '.') and never
    reads empty files; the job accounts for the latter itself.
    """
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(input_uri)


def uri_to_path(uri: str) -> str:
    """inputFiles() gives URIs (file:///a%20b); binaryFile's path column gives Hadoop paths (file:/a b)."""
    text = unquote(uri)
    return "file:/" + text.removeprefix("file:///") if text.startswith("file:///") else text


def listed_paths(files: DataFrame) -> list[str]:
    """Every file in the DataFrame's file index (empty files included), spelled as in its path column,
    through the public inputFiles() (one py4j round trip per file)."""
    return [uri_to_path(uri) for uri in files.inputFiles()]


def require_input_folder(storage: Storage, input_uri: str) -> str:
    uri = normalize(input_uri)
    if not storage.exists(uri):
        raise JobInputError(f"input not found: {input_uri}")
    if not storage.is_dir(uri):
        raise JobInputError(f"input must be a folder (or prefix) of images: {input_uri}")
    return uri


def discover(spark: SparkSession, storage: Storage, input_uri: str) -> Inputs:
    """List the input once, on the driver (no Spark job, no contents read); fail when there is no image."""
    uri = require_input_folder(storage, input_uri)
    files = binary_files(spark, uri)
    listed = pyspark_private.file_index_identities(files)
    image_paths: list[str] = []
    skipped: list[str] = []
    for path in sorted(listed_paths(files) if listed is None else [path for path, _, _ in listed]):
        (image_paths if is_image_path(path) else skipped).append(path)
    identities = None if listed is None else {p: (n, ms) for p, n, ms in listed if is_image_path(p)}
    log.info("listed %s: %d image files, %d other files skipped", input_uri, len(image_paths), len(skipped))
    if not image_paths:
        raise JobInputError(f"no JPEG or PNG images under {input_uri} ({len(skipped)} other files)")
    return Inputs(
        qualified=storage.qualified(uri),
        files=files,
        image_paths=image_paths,
        skipped=skipped,
        identities=identities,
    )


# Spark lists more than `threshold` (32) root paths in a Spark job of min(paths, `parallelism`) tasks, and
# `parallelism` defaults to 10,000: 800 new photos made an 800-task job, 2.3 s of the 5 s inferring them
# (0.1 s with one task per core; measured 2026-12-01, local[2]). A few tasks per core: on S3 each path is
# a request, so a task's paths take their latency one after another. On a local disk a path is a stat:
# the driver lists them itself, no job (~0.1 s less per run in a fresh JVM, 2026-12-02).
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


LISTING_THRESHOLD = "spark.sql.sources.parallelPartitionDiscovery.threshold"


def listing_tasks(spark: SparkSession) -> str:
    return str(max(8, 4 * spark.sparkContext.defaultParallelism))


@contextmanager
def listing_of(spark: SparkSession, paths: list[str]) -> Iterator[None]:
    """For a read of these explicit paths: listed by the driver if all are on a local disk, else by a job of
    a few tasks per core (listing_tasks)."""
    if all(path.startswith("file:") for path in paths):
        with sql_conf(spark, LISTING_THRESHOLD, str(len(paths) + 1)):
            yield
    else:
        with sql_conf(spark, LISTING_PARALLELISM, listing_tasks(spark)):
            yield
