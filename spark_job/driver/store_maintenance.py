"""The features store's maintenance: `python -m spark_job store stats URI` and `store compact URI`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_job.contract.errors import JobInputError
from spark_job.driver.listing import folder_files
from spark_job.driver.storage import Storage, join, normalize
from spark_job.driver.store import (
    IDENTITY,
    KEY_RECORD,
    RUN_PARTITION,
    chosen_rows,
    new_run_id,
    read_key_dir,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyStats:
    key: str
    images: int  # distinct identities
    rows: int  # duplicates included
    bytes: int  # Parquet files on storage
    runs: list[str]


def key_folders(storage: Storage, root: str) -> list[str]:
    """The featurizer key folders of a store (those holding a _featurizer.json)."""
    uri = normalize(root)
    if not storage.is_dir(uri):
        raise JobInputError(f"features store not found: {root}")
    return [n for n in storage.subfolders(uri) if storage.exists(join(uri, n, KEY_RECORD))]


def run_folders(storage: Storage, key_dir: str) -> list[str]:
    return [n for n in storage.subfolders(key_dir) if n.startswith(f"{RUN_PARTITION}=")]


def store_stats(spark: SparkSession, root: str) -> list[KeyStats]:
    storage = Storage(spark)
    out = []
    for name in key_folders(storage, root):
        key_dir = join(normalize(root), name)
        rows = read_key_dir(spark, storage, key_dir)
        counts = rows.agg(
            F.count(F.lit(1)).alias("rows"),
            F.countDistinct(*IDENTITY).alias("images"),
            F.collect_set(RUN_PARTITION).alias("runs"),
        ).first()
        assert counts is not None
        out.append(
            KeyStats(
                key=name,
                images=int(counts["images"]),
                rows=int(counts["rows"]),
                bytes=storage.total_bytes(key_dir),
                runs=sorted(counts["runs"]),
            )
        )
    return out


def format_stats(root: str, stats: list[KeyStats]) -> str:
    lines = [f"features store {root}: {len(stats)} featurizer key(s)"]
    for s in stats:
        lines.append(
            f"  {s.key}: {s.images} images, {s.rows - s.images} duplicate rows, "
            f"{s.bytes / 1e6:.1f} MB, {len(s.runs)} run(s)"
            + (f" ({', '.join(s.runs[-5:])}{', ...' if len(s.runs) > 5 else ''})" if s.runs else "")
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Compaction:
    key: str
    rows_before: int
    rows_after: int
    runs_removed: int


def compact_key(spark: SparkSession, root: str, name: str) -> Compaction:
    """Rewrite one key's rows without duplicates or rows of deleted (or changed) files, into one new run
    folder, then remove the run folders it read. Run it while no job writes to the store: a folder being
    appended to when compaction started is removed with the others."""
    storage = Storage(spark)
    key_dir = join(normalize(root), name)
    runs = run_folders(storage, key_dir)
    rows = read_key_dir(spark, storage, key_dir)
    before = rows.count()
    # The folders the stored photos are in (a few per class): listed on the executors, one task each.
    parent = F.regexp_extract("path", r"^(.*)/[^/]*$", 1)
    folders = sorted(row["folder"] for row in rows.select(parent.alias("folder")).distinct().collect())
    kept = chosen_rows(rows, folder_files(spark, folders))
    run_id = new_run_id("compact")
    target = join(key_dir, f"{RUN_PARTITION}={run_id}")
    kept.write.mode("errorifexists").parquet(target)
    for run in runs:
        storage.delete(join(key_dir, run))
    after = spark.read.parquet(target).count()
    log.info("compacted %s: %d rows -> %d, %d run folders replaced", key_dir, before, after, len(runs))
    return Compaction(key=name, rows_before=before, rows_after=after, runs_removed=len(runs))


def compact_store(spark: SparkSession, root: str, key: str | None = None) -> list[Compaction]:
    storage = Storage(spark)
    names = key_folders(storage, root)
    if key is not None:
        if key not in names:
            raise JobInputError(f"no featurizer key {key} in {root} (keys: {', '.join(names) or 'none'})")
        names = [key]
    return [compact_key(spark, root, name) for name in names]
