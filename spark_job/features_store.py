"""The features store: every image's features, kept across runs, so a run infers only the images it has not
seen before.

Layout, on a local folder or an s3:// prefix:

    <store>/<featurizer key>/_featurizer.json        what the key stands for (FeaturizerKey)
    <store>/<featurizer key>/run_id=<run>/part-*.parquet
        path, length, modification_time   the image's identity: what the file listing gives, no read
        label, features                   features: array<float> FEATURE_DIM
        run_id                            the run that inferred the row (the partition column)

The featurizer key names the network, the engine, the image size and the weights' sha256: features of one
key are interchangeable, features of two keys never mix. A rewritten file has a new modification time, so it
is a new identity and gets inferred again.

Why it is safe under faults and concurrency:
- Append-only. Each run writes only into its own `run_id=<run>/` folder, so two runs never share Hadoop's
  `_temporary/` folder (one run's job cleanup would delete the other's task files).
- Per task attempt. Locally (and on HDFS) the append uses FileOutputCommitter algorithm 2: each task
  attempt's file is moved into place when that task commits, not when the job ends. On EMR, s3:// writes
  go through EMR's MagicCommitProtocol (S3A, EMR 7.10+), which "writes the files in the job's output
  location during the task commit phase" for a static insert like this append, or through the EMRFS
  S3-optimized committer, which completes each file's multipart upload at task commit (EMR Release Guide).
  A run killed in the middle leaves the files of the tasks that finished (readable: a reader sees whole
  Parquet files or none) and an orphan `_temporary/` (ignored by readers: its name starts with `_`). The
  next run reuses what was committed (tests/job/test_features_store.py kills a run to prove it).
- Readers deduplicate by identity: a duplicated identity (two runs inferred the same new image at the same
  time, a retried task whose first attempt had committed) counts once.
- Only accepted images are stored: a rejected image is tried again, and reported, by every run.

A run's features/ is made from the store (assemble_features): the store files whose every row it wants are
copied as they are, the others' wanted rows rewritten through Spark; which file holds what comes from one
scan of the store's identity columns (holdings), made after this run's append, on the same listing of the
store's files as the rows are then read from. A file that mixes inputs' rows (those `compact` writes, or a
store shared by Training and Test runs that inferred both at once) is rewritten, never copied: correct,
~1 s more per 8,000 of its rows on this 2-vCPU machine.

`compact` rewrites a key's rows without duplicates and without rows of files that no longer exist (or
changed); `stats` reports images, size and runs per key. Both go through Hadoop's FileSystem (storage.py),
local or s3://.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pandas as pd
from pyspark.accumulators import Accumulator
from pyspark.sql import DataFrame, SparkSession
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

from spark_job.errors import JobFailedError, JobInputError
from spark_job.features_parquet import save_features
from spark_job.featurize import (
    FEATURES_DIR,
    FeaturizeResult,
    RejectsParam,
    featurize,
    finish_stage,
    is_image,
    sql_conf,
    start_stage,
    with_label,
    write_features,
)
from spark_job.listing import Inputs
from spark_job.names import FEATURE_DIM
from spark_job.plan import RunPlan
from spark_job.storage import Storage, join, normalize
from spark_job.timings import Timings

log = logging.getLogger(__name__)

# The network the job runs (spark_job.mobilenet), as the featurizer key spells it.
NETWORK_KEY = "mobilenet_v2_avg"
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


def empty_store(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], STORE_SCHEMA)


def _read_dir(spark: SparkSession, storage: Storage, key_dir: str) -> DataFrame:
    """Every row under a key folder, duplicates included."""
    if not storage.is_dir(key_dir):
        return empty_store(spark)
    return spark.read.schema(STORE_SCHEMA).parquet(key_dir)


def deduplicated(rows: DataFrame, within: DataFrame) -> DataFrame:
    """One row per identity. Two rows of one identity hold the same features (same key, same file).

    The row kept is the one in the first Parquet file (by name) that holds the identity: deciding on the
    identity and file name alone shuffles no features (dropDuplicates would shuffle every row). A task
    writes each identity once, so within one file an identity is unique. `rows`: as read from the store
    (the file name is taken at the scan); only the identities in `within` are kept.
    """
    tagged = rows.withColumn("_file", F.input_file_name()).join(
        F.broadcast(within.select(*IDENTITY)), list(IDENTITY), "left_semi"
    )
    first = tagged.select(*IDENTITY, "_file").groupBy(*IDENTITY).agg(F.min("_file").alias("_file"))
    return tagged.join(F.broadcast(first), [*IDENTITY, "_file"], "left_semi").drop("_file")


class FeaturesStore:
    """One featurizer key's dataset in a store."""

    def __init__(self, spark: SparkSession, storage: Storage, root: str, key: FeaturizerKey) -> None:
        self.spark = spark
        self.storage = storage
        self.root = normalize(root)
        self.key = key
        self.dir = join(self.root, key.folder)

    def rows(self) -> DataFrame:
        """All rows as written, duplicates included, from the files listed now (no later append)."""
        return _read_dir(self.spark, self.storage, self.dir)

    def run_dir(self, run_id: str) -> str:
        return join(self.dir, f"{RUN_PARTITION}={run_id}")

    def append(self, rows: DataFrame, run_id: str) -> None:
        """rows: path, length, modification_time, label, features; one file per task, committed per task."""
        if not self.storage.exists(join(self.dir, KEY_RECORD)):
            self.storage.write_text(join(self.dir, KEY_RECORD), self.key.to_json())
        save_features(rows.select(*FILE_SCHEMA.fieldNames()), self.run_dir(run_id), "append", PER_TASK_COMMIT)


_GLOB_CHARACTERS = "\\[]{}*?"


def escape_glob(path: str) -> str:
    """Spark reads each path it is given as a Hadoop glob pattern: make it match only itself."""
    return "".join("\\" + c if c in _GLOB_CHARACTERS else c for c in path)


@dataclass(frozen=True)
class StoreRun:
    """What a run did with the store: for the manifest."""

    uri: str  # the featurizer key's folder
    key: FeaturizerKey
    run_id: str


def store_featurize_stage(
    spark: SparkSession, plan: RunPlan, store_uri: str, run_id: str, timings: Timings
) -> tuple[FeaturizeResult, StoreRun]:
    """The featurize stage with a store: infer only the listed images whose identity is not in the store,
    append them, then write features/ for exactly the listed images, from the store. The outputs of
    featurize_stage (features/: path, label, features, here with the identity's length and
    modification_time too; rejects/)."""
    storage = Storage(spark)
    store = FeaturesStore(spark, storage, store_uri, featurizer_key(plan))
    # The workers start while the driver lists and looks up the store (start_stage).
    inputs = start_stage(spark, storage, plan, timings)
    with timings.stage("featurize"):
        result = _featurize_with_store(spark, plan, inputs, store, run_id, timings)
    return result, StoreRun(uri=store.dir, key=store.key, run_id=run_id)


Identity = tuple[str, int, int]  # path, length, modification time in ms, as a stored row holds it


def same_file(listed: tuple[int, int] | None, length: int, ms: int) -> bool:
    """Whether a stored row's identity is this listed file (listed: its (length, ms), None: not listed).

    Compared to the second: the listing's times come from the file index (an S3 LIST) and the stored ones
    from binaryFile's file status (an S3 HEAD), and some stores give milliseconds in one and whole seconds
    in the other. S3's own times are whole seconds; a file rewritten with the same length within the same
    second of its previous version would be taken for it.
    """
    return listed is not None and listed[0] == length and listed[1] // 1000 == ms // 1000


def listed_identities(inputs: Inputs) -> dict[str, tuple[int, int]]:
    """path -> (length, modification ms) of every listed image: from the listing itself, or else a scan."""
    if inputs.identities is not None:
        return inputs.identities
    rows = (
        inputs.files.where(is_image(F.col("path")))
        .select("path", "length", F.unix_millis("modificationTime").alias("ms"))
        .collect()
    )
    return {row["path"]: (int(row["length"]), int(row["ms"])) for row in rows}


@dataclass(frozen=True)
class Holdings:
    """What the store's files hold of the listed images: one scan of the store's identity and label columns
    (no features read), aggregated per file on the executors, collected here, matched with the listing."""

    files: dict[Identity, list[str]]  # each listed identity the store holds -> the files holding it, sorted
    relabelled: frozenset[str]  # files with a listed row whose label this input's folders spell otherwise
    rows_per_file: dict[str, int]  # every file of the store -> its rows

    def chosen(self) -> dict[Identity, str]:
        """The file whose row of each identity features/ takes: the first by name. Two rows of one identity
        hold the same features (same key, same file): two runs inferred the same new photo at once, or a
        retried task's first attempt had committed."""
        return {identity: names[0] for identity, names in self.files.items()}


def label_of(path: str, qualified_input: str) -> str | None:
    """featurize.with_label's label of a path under the input, in Python: its first folder there, or None
    for a file directly in the input."""
    relative = path[len(qualified_input.rstrip("/")) + 1 :]
    return relative.split("/", 1)[0] if "/" in relative else None


def holdings(stored: DataFrame, inputs: Inputs, listed: dict[str, tuple[int, int]]) -> Holdings:
    """stored: the store's rows (FeaturesStore.rows(): its files as listed when it was made). Only rows under
    the input folder come back to the driver, so the store may hold many more (other inputs) at little cost.
    """
    in_input = F.col("path").startswith(inputs.qualified.rstrip("/") + "/")
    tagged = stored.select(*IDENTITY, "label").withColumn("_file", F.input_file_name())
    held_row = F.struct("path", "length", F.unix_millis("modification_time").alias("ms"), "label")
    # The stored label is compared here, not in the query: its few string expressions made this first
    # query of a fresh JVM ~0.1 s slower (0.85-0.90 s against 0.77-0.79 s, 8,000 rows, 2026-12-02).
    per_file = (
        tagged.groupBy("_file")
        .agg(F.count(F.lit(1)).alias("rows"), F.collect_list(F.when(in_input, held_row)).alias("held"))
        .collect()
    )
    files: dict[Identity, list[str]] = {}
    relabelled = set()
    for entry in per_file:
        for row in entry["held"]:
            if not same_file(listed.get(row["path"]), row["length"], row["ms"]):
                continue  # deleted, or changed since: not this run's
            files.setdefault((row["path"], row["length"], row["ms"]), []).append(entry["_file"])
            if row["label"] != label_of(row["path"], inputs.qualified):
                relabelled.add(entry["_file"])
    # Two stored versions of one path both taken for the listed file (rewritten within the same second,
    # same length): the newer one only, so that features/ holds one row per path.
    newest: dict[str, Identity] = {}
    for identity in files:
        if identity[0] not in newest or identity[2] > newest[identity[0]][2]:
            newest[identity[0]] = identity
    return Holdings(
        {identity: sorted(files[identity]) for identity in newest.values()},
        frozenset(relabelled),
        {entry["_file"]: int(entry["rows"]) for entry in per_file},
    )


def _featurize_with_store(
    spark: SparkSession,
    plan: RunPlan,
    inputs: Inputs,
    store: FeaturesStore,
    run_id: str,
    timings: Timings,
) -> FeaturizeResult:
    """Within the featurize stage: store_lookup (which images are new), store_infer (infer and append
    them), store_assemble (features/ and rejects/ from the store)."""
    sc = spark.sparkContext
    with timings.stage("store_lookup"):
        if not store.storage.is_dir(store.dir):  # a new featurizer key: every image is new
            listed: dict[str, tuple[int, int]] = {}
            new_paths, reused = list(inputs.image_paths), 0
        else:
            listed = listed_identities(inputs)
            known = {path for path, _, _ in holdings(store.rows(), inputs, listed).files}
            new_paths = [path for path in inputs.image_paths if path not in known]
            reused = len(known)
    log.info(
        "features store %s: %d of %d listed images known, %d to infer",
        store.dir,
        reused,
        inputs.images,
        len(new_paths),
    )
    inferred = sc.accumulator(0)
    rejected = sc.accumulator([], RejectsParam())
    with timings.stage("store_infer"):
        _infer_new(spark, plan, inputs, store, run_id, new_paths, inferred, rejected)
    with timings.stage("store_assemble"):
        n_features = assemble_features(spark, plan, inputs, store, listed or listed_identities(inputs))
    check_assembled(n_features, reused, int(inferred.value))
    return finish_stage(spark, store.storage, plan, inputs, n_features, inferred, rejected, reused)


def check_assembled(n_features: int, reused: int, inferred: int) -> None:
    """features/ holds every image the lookup found and every one this run appended, unless a photo was
    replaced while the run read it (then rejects/ lists it). None of this run's own rows found means the
    store's identities and the listing's disagree: fail rather than lose them all."""
    missing = reused + inferred - n_features
    if inferred and missing >= inferred:
        raise JobFailedError(
            f"none of the {inferred} images this run appended to the features store matched the input's "
            "listing (path, length, modification time): does this storage report other modification "
            "times in listings than in file statuses?"
        )
    if missing > 0:
        log.warning("%d images inferred or reused are not in features/: replaced during the run?", missing)


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


def _infer_new(
    spark: SparkSession,
    plan: RunPlan,
    inputs: Inputs,
    store: FeaturesStore,
    run_id: str,
    new_paths: list[str],
    inferred: Accumulator,
    rejected: Accumulator,
) -> None:
    if not new_paths:
        return
    # Only the new files' bytes are read: all of the input's when all are new, else the new paths.
    if len(new_paths) == len(inputs.image_paths):
        files = inputs.files
    else:
        with listing_of(spark, new_paths):  # the load lists at once
            files = spark.read.format("binaryFile").load([escape_glob(p) for p in new_paths])
    images = with_label(
        files.where(is_image(F.col("path"))).select("path", "length", "modificationTime", "content"),
        inputs.qualified,
    )
    rows = featurize(images, plan.engine, plan.batch_size, inferred, rejected)
    accepted = rows.where(F.col("error").isNull()).select(
        "path", "length", F.col("modificationTime").alias("modification_time"), "label", "features"
    )
    store.append(accepted, run_id)  # the featurize function's only action


@dataclass(frozen=True)
class Assembly:
    """How features/ is made from the store's files: copied whole, or their wanted rows rewritten."""

    copied: dict[str, int]  # store files copied into features/ as they are -> their rows
    rewritten: dict[str, list[Identity]]  # other store files holding wanted rows -> those rows' identities

    @property
    def copied_rows(self) -> int:
        return sum(self.copied.values())


def plan_assembly(held: Holdings) -> Assembly:
    """A store file is copied as it is when features/ wants every row in it: each is a listed identity,
    that file's row of it is the one kept, and its label is the one this input gives. Any other file
    holding a wanted row has those rows rewritten. (A task writes each identity once, so a file's
    rows are distinct identities.)"""
    wanted: dict[str, list[Identity]] = {}
    for identity, name in held.chosen().items():
        wanted.setdefault(name, []).append(identity)
    copied = {
        name: len(rows)
        for name, rows in wanted.items()
        if len(rows) == held.rows_per_file.get(name) and name not in held.relabelled
    }
    return Assembly(copied, {name: rows for name, rows in wanted.items() if name not in copied})


def assemble_features(
    spark: SparkSession,
    plan: RunPlan,
    inputs: Inputs,
    store: FeaturesStore,
    listed: dict[str, tuple[int, int]],
) -> int:
    """features/: the store's rows of exactly the listed identities, one per identity, labelled as this
    run's input folders say; returns its rows.

    Columns: path, length, modification_time (the identity), label, features. Whole store files whose
    rows are all wanted (the usual case: the previous runs' appends and this one's) are copied into
    features/ as they are, with no Spark job reading or writing their features (~1 s of a 2-core machine
    per 8,000 rows, measured 2026-12-01); the others' wanted rows are rewritten through Spark. The
    holdings are looked up now (this run's appends, and any other run's since the lookup, are in them), on
    the same listing of the store's files as the rows are read from: a file another run commits between
    the two changes neither.
    """
    stored = store.rows()
    held = holdings(stored, inputs, listed)
    assembly = plan_assembly(held)
    log.info(
        "features/ from the store: %d files copied (%d rows), %d files' rows rewritten",
        len(assembly.copied),
        assembly.copied_rows,
        len(assembly.rewritten),
    )
    n_rewritten = 0
    if assembly.rewritten:
        n_rewritten = _rewrite_rows(spark, plan, inputs, assembly)
    elif not assembly.copied:  # nothing to copy or rewrite: features/ still gets its schema
        write_features(spark.createDataFrame([], FILE_SCHEMA), plan.output)
    store.storage.copy_into(sorted(assembly.copied), join(plan.output, FEATURES_DIR))
    return n_rewritten + assembly.copied_rows


def _rewrite_rows(spark: SparkSession, plan: RunPlan, inputs: Inputs, assembly: Assembly) -> int:
    """Write into features/ the wanted rows of the store files that are not copied (each identity's row in
    the file chosen for it). Returns the rows written, which must be those planned."""
    expected = sum(len(rows) for rows in assembly.rewritten.values())
    # Which row of which file to keep, as a DataFrame through Arrow: no per-row Python and no literal of
    # every identity in the plan (after `store compact` every wanted row may be rewritten).
    keep = pd.DataFrame(
        [(*identity, name) for name, identities in assembly.rewritten.items() for identity in identities],
        columns=["path", "length", "ms", "_file"],
    )
    with sql_conf(spark, "spark.sql.execution.arrow.pyspark.enabled", "true"):
        keep_frame = spark.createDataFrame(keep, "path string, length long, ms long, _file string")
    # Only those files are read (their names, as input_file_name() spells them, are URLs).
    paths = [escape_glob(unquote(name)) for name in sorted(assembly.rewritten)]
    with listing_of(spark, sorted(assembly.rewritten)):
        files = spark.read.schema(FILE_SCHEMA).parquet(*paths)
    rows = (
        files.withColumn("_file", F.input_file_name())
        .withColumn("ms", F.unix_millis("modification_time"))
        .join(F.broadcast(keep_frame), ["path", "length", "ms", "_file"], "left_semi")
    )
    columns = FILE_SCHEMA.fieldNames()
    written = write_features(with_label(rows, inputs.qualified).select(*columns), plan.output)
    if written != expected:
        raise JobFailedError(
            f"features/ from the store: {written} rows rewritten from {len(assembly.rewritten)} store files, "
            f"{expected} expected (was the store changed during the run? `store compact` runs alone)"
        )
    return written


# --- maintenance: python -m spark_job store {stats,compact} ----------------------------------------------


@dataclass(frozen=True)
class KeyStats:
    key: str
    images: int  # distinct identities
    rows: int  # duplicates included
    bytes: int  # Parquet files on storage
    runs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hadoop(storage: Storage, uri: str) -> tuple[Any, Any]:
    return storage._path(uri)  # the Hadoop FileSystem and Path of uri (storage.py owns the JVM access)


def key_folders(storage: Storage, root: str) -> list[str]:
    """The featurizer key folders of a store (those holding a _featurizer.json)."""
    uri = normalize(root)
    if not storage.is_dir(uri):
        raise JobInputError(f"features store not found: {root}")
    fs, path = _hadoop(storage, uri)
    names = [str(s.getPath().getName()) for s in fs.listStatus(path) if s.isDirectory()]
    return sorted(n for n in names if storage.exists(join(uri, n, KEY_RECORD)))


def run_folders(storage: Storage, key_dir: str) -> list[str]:
    fs, path = _hadoop(storage, key_dir)
    prefix = f"{RUN_PARTITION}="
    names = [str(s.getPath().getName()) for s in fs.listStatus(path) if s.isDirectory()]
    return sorted(n for n in names if n.startswith(prefix))


def store_stats(spark: SparkSession, root: str) -> list[KeyStats]:
    storage = Storage(spark)
    out = []
    for name in key_folders(storage, root):
        key_dir = join(normalize(root), name)
        rows = _read_dir(spark, storage, key_dir)
        counts = rows.agg(
            F.count(F.lit(1)).alias("rows"),
            F.countDistinct(*IDENTITY).alias("images"),
            F.collect_set(RUN_PARTITION).alias("runs"),
        ).first()
        assert counts is not None
        fs, path = _hadoop(storage, key_dir)
        out.append(
            KeyStats(
                key=name,
                images=int(counts["images"]),
                rows=int(counts["rows"]),
                bytes=int(fs.getContentSummary(path).getLength()),
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


def _from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


def current_identities(spark: SparkSession, storage: Storage, paths: list[str]) -> DataFrame:
    """path, length, modification_time of the files that exist now, listed folder by folder (a folder
    holds many images: one listing call per folder, not one per file)."""
    folders = sorted({p.rsplit("/", 1)[0] for p in paths})
    rows = []
    for folder in folders:
        fs, path = _hadoop(storage, folder)
        if not fs.exists(path):
            continue
        for status in fs.listStatus(path):
            if status.isFile():
                rows.append(
                    (
                        str(status.getPath().toString()),
                        int(status.getLen()),
                        _from_millis(int(status.getModificationTime())),
                    )
                )
    return spark.createDataFrame(rows, StructType(STORE_SCHEMA.fields[:3]))


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
    rows = _read_dir(spark, storage, key_dir)
    before = rows.count()
    paths = [r["path"] for r in rows.select("path").distinct().collect()]
    existing = current_identities(spark, storage, paths)
    kept = deduplicated(rows, within=existing)
    run_id = new_run_id("compact")
    target = join(key_dir, f"{RUN_PARTITION}={run_id}")
    save_features(kept.drop(RUN_PARTITION), target, "errorifexists")
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
