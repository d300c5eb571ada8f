"""The features store: every image's features, kept across runs, so a run infers only the images it has not
seen before. Why it is safe under faults and concurrency: docs/features-store.md.

    <store>/<featurizer key>/_featurizer.json        what the key stands for (FeaturizerKey)
    <store>/<featurizer key>/run_id=<run>/part-*.parquet
        path, length, modification_time   the image's identity: what the file listing gives, no read
        label, features                   features: array<float> FEATURE_DIM
        run_id                            the run that inferred the row (the partition column)

Features of one key are interchangeable, of two keys never mixed; a rewritten file has a new modification
time, so it is inferred again. Runs only append, each into its own run_id= folder, one file per task
committed with its task; readers count an identity once.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    FloatType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from spark_job.contract.errors import JobInputError
from spark_job.contract.names import FEATURE_DIM
from spark_job.driver.plan import RunPlan
from spark_job.driver.storage import Storage, join, normalize

NETWORK_KEY = "mobilenet_v2_avg"  # spark_job.workers.network, as the featurizer key spells it
KEY_RECORD = "_featurizer.json"  # '_': Spark's file index leaves it out of the dataset
RUN_PARTITION = "run_id"
IDENTITY = ("path", "length", "modification_time")

STORE_SCHEMA = StructType(
    [
        StructField("path", StringType(), False),
        StructField("length", LongType(), False),
        StructField("modification_time", TimestampType(), False),
        StructField("label", StringType(), True),
        StructField("features", ArrayType(FloatType()), True),
        StructField(RUN_PARTITION, StringType(), True),
    ]
)
# A store file's columns (run_id is its folder's name): features/ of a run with a store has them too.
FILE_SCHEMA = StructType([f for f in STORE_SCHEMA.fields if f.name != RUN_PARTITION])

# Each task attempt's output is moved into place when that task commits (algorithm 1 moves all of them at
# job commit, so a killed run would leave nothing). Passed as a write option: it applies to this write only.
PER_TASK_COMMIT = {"mapreduce.fileoutputcommitter.algorithm.version": "2"}


@dataclass(frozen=True)
class FeaturizerKey:
    """What makes two features vectors interchangeable: the same network, engine, image size and weights."""

    network: str
    engine: str
    image_size: int
    weights_sha256: str

    @property
    def folder(self) -> str:
        # 16 hex digits of the sha256 (64 bits) keep the name short; _featurizer.json holds all 64.
        return f"{self.network}-{self.engine}-{self.image_size}px-{self.weights_sha256[:16]}"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "feature_dim": FEATURE_DIM, "folder": self.folder}, indent=2)


def featurizer_key(plan: RunPlan) -> FeaturizerKey:
    return FeaturizerKey(NETWORK_KEY, plan.engine.name, plan.image_size, plan.weights.sha256)


def new_run_id(mode: str) -> str:
    """Unique per run and sortable by time: 20261201T201500Z-fit-3fa2c1."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{mode}-{secrets.token_hex(3)}"


def check_store_location(store: str, *, input_uri: str, output: str) -> str:
    """The store's normalized URI; it may not sit inside this run's output (--overwrite empties that) or its
    input (its files would be listed as input)."""
    uri = normalize(store)
    for what, other in (("--output", normalize(output)), ("--input", normalize(input_uri))):
        if uri == other or uri.startswith(other.rstrip("/") + "/"):
            raise JobInputError(f"--features-store {store} is inside {what} {other}: use a folder of its own")
    return uri


def read_key_dir(spark: SparkSession, storage: Storage, key_dir: str) -> DataFrame:
    """Every row under a key folder, duplicates included."""
    if not storage.is_dir(key_dir):
        return spark.createDataFrame([], STORE_SCHEMA)
    return spark.read.schema(STORE_SCHEMA).parquet(key_dir)


def same_file(listed: DataFrame, stored: DataFrame) -> Column:
    """Whether a stored row's identity is a listed file: the same path and length, and the same
    modification time to the second (listed: modification_ms, stored: modification_time). To the second:
    some stores give milliseconds in one listing and whole seconds in another (S3's are whole seconds)."""
    stored_ms = F.unix_millis(stored["modification_time"])
    return (
        (listed["path"] == stored["path"])
        & (listed["length"] == stored["length"])
        & (F.floor(listed["modification_ms"] / 1000) == F.floor(stored_ms / 1000))
    )


def chosen_rows(stored: DataFrame, listed: DataFrame) -> DataFrame:
    """One stored row per listed file (path, length, modification_ms, label): path, length,
    modification_time, label (as `listed` says, if it has a label column; else as stored), features.

    Duplicates of one identity hold the same features; of two versions of one path both taken for the
    listed file, the newer is kept. The choice reads identities and file names only (then the first file by
    name); the features of exactly the chosen rows are read after.
    """
    tagged = stored.withColumn("_file", F.input_file_name())  # taken at the scan
    ids = tagged.select("path", "length", "modification_time", "_file")
    relabel = "label" in listed.columns
    matched = ids.join(listed, same_file(listed, ids)).select(
        ids["path"], ids["modification_time"], ids["_file"], *([listed["label"]] if relabel else [])
    )
    newest_first = Window.partitionBy("path").orderBy(F.desc("modification_time"), F.asc("_file"))
    chosen = (
        matched.withColumn("_rank", F.row_number().over(newest_first))
        .where("_rank = 1")
        .drop("_rank", "modification_time")
    )
    rows = tagged.drop("label") if relabel else tagged
    return rows.join(chosen, ["path", "_file"]).select(*FILE_SCHEMA.fieldNames())


class FeaturesStore:
    """One featurizer key's dataset in a store."""

    def __init__(self, spark: SparkSession, storage: Storage, root: str, key: FeaturizerKey) -> None:
        self.spark = spark
        self.storage = storage
        self.key = key
        self.dir = join(normalize(root), key.folder)

    def rows(self) -> DataFrame:
        """All rows as written, duplicates included, from the files listed now (no later append)."""
        return read_key_dir(self.spark, self.storage, self.dir)

    def run_dir(self, run_id: str) -> str:
        return join(self.dir, f"{RUN_PARTITION}={run_id}")

    def append(self, rows: DataFrame, run_id: str) -> None:
        """rows: path, length, modification_time, label, features; one file per task, committed per task."""
        if not self.storage.exists(join(self.dir, KEY_RECORD)):
            self.storage.write_text(join(self.dir, KEY_RECORD), self.key.to_json())
        rows.select(*FILE_SCHEMA.fieldNames()).write.options(**PER_TASK_COMMIT).mode("append").parquet(
            self.run_dir(run_id)
        )


@dataclass(frozen=True)
class StoreRun:
    """What a run did with the store: for the manifest."""

    uri: str  # the featurizer key's folder
    key: FeaturizerKey
    run_id: str
