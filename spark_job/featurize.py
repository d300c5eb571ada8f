"""The featurize stage: every listed image through the engine once, into <output>/features and rejects/.

Pure DataFrame -> DataFrame functions (images_of, featurize, accepted) and the stage that runs them
(featurize_stage): list the input, check the output folder, run mapInArrow once over every image (each
Python worker builds its engine on its first task and keeps it), write the accepted rows to features/ and
every image without features, with a reason, to rejects/.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.accumulators import Accumulator, AccumulatorParam
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from spark_job import internals
from spark_job.engine import Engine, EngineSpec, worker_engine
from spark_job.features_parquet import save_features
from spark_job.listing import IMAGE_PATTERN, Inputs, discover
from spark_job.mobilenet import EMPTY_FILE_REASON, describe_decode_error  # with the decoder: `predict` too
from spark_job.plan import RunPlan, prepare_output, refuse_existing_output
from spark_job.storage import Storage, join
from spark_job.timings import Timings

log = logging.getLogger(__name__)

FEATURES_DIR = "features"
REJECTS_DIR = "rejects"

# features/ as the stages after featurize read it (the store's runs write its identity columns too).
FEATURES_SCHEMA = StructType(
    [
        StructField("path", StringType(), False),
        StructField("label", StringType(), True),
        StructField("features", ArrayType(FloatType()), True),
    ]
)

# The featurize function's output. Its features' elements are declared non-null (the engine writes every
# value): Spark writes such an array as Parquet's two-level list (save_features).
FEATURIZED_SCHEMA = StructType(
    [
        StructField("path", StringType(), False),
        StructField("label", StringType(), True),
        StructField("features", ArrayType(FloatType(), containsNull=False), True),
        StructField("error", StringType(), True),
    ]
)


def is_image(path: Column) -> Column:
    """JPEG or PNG by extension, case-insensitive."""
    return F.lower(path).rlike(IMAGE_PATTERN.pattern)


def with_label(files: DataFrame, qualified_input: str) -> DataFrame:
    """label = the first folder under the input (null for files directly in it: a flat folder)."""
    prefix_len = len(qualified_input.rstrip("/")) + 1
    relative = F.expr(f"substring(path, {prefix_len + 1})")
    return files.withColumn("label", F.when(F.instr(relative, "/") > 0, F.substring_index(relative, "/", 1)))


def images_of(files: DataFrame, qualified_input: str) -> DataFrame:
    """Image files with their bytes: path, label, content."""
    images = files.where(is_image(F.col("path"))).select("path", "content")
    return with_label(images, qualified_input).select("path", "label", "content")


class RejectsParam(AccumulatorParam):
    """Accumulates (path, reason) pairs of the images the engine could not decode."""

    def zero(self, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return []

    def addInPlace(self, acc: list[tuple[str, str]], more: list[tuple[str, str]]) -> list[tuple[str, str]]:
        acc.extend(more)
        return acc


def start_engine(engine: EngineSpec) -> Callable[[Iterable[int]], Iterator[int]]:
    """A worker's start-up ahead of the stage: its engine (worker_engine keeps it for the stage's tasks) and
    what its first Arrow task imports. Yields the worker's pid."""

    def run(_: Iterable[int]) -> Iterator[int]:
        # What reading the stage's first task imports: this module, the Arrow runner's serializers.
        import pyspark.sql.pandas.serializers  # noqa: F401

        import spark_job.featurize  # noqa: F401

        worker_engine(engine)
        yield os.getpid()

    return run


def featurize_batches(
    engine: EngineSpec,
    batch_size: int,
    inferred: Accumulator | None = None,
    rejected: Accumulator | None = None,
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function: each task's batches of (path, label, content) through this worker's engine.

    The engine is built once per Python worker (`worker_engine`), not per task. The function, and with it
    the accumulators, is shipped with every task, so plain `add` counts into that task's copies, and Spark
    merges them only for a task attempt that succeeds.
    """

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        built = worker_engine(engine)
        for batch in batches:
            for start in range(0, batch.num_rows, batch_size):
                yield _featurized(built, batch.slice(start, batch_size), inferred, rejected)

    return run


def _featurized(
    built: Engine, batch: pa.RecordBatch, inferred: Accumulator | None, rejected: Accumulator | None
) -> pa.RecordBatch:
    contents = batch.column("content").to_pylist()
    paths = batch.column("path").to_pylist()
    _test_fault_hook(paths)
    features, errors = built.featurize(contents)
    reasons = [None if e is None else describe_decode_error(e, contents[i]) for i, e in enumerate(errors)]
    n_failed = sum(r is not None for r in reasons)
    if inferred is not None:
        inferred.add(len(paths) - n_failed)
    if rejected is not None and n_failed:
        rejected.add([(paths[i], r) for i, r in enumerate(reasons) if r is not None])
    # path, label and any passed-through column, as they came; then features and error.
    kept = [name for name in batch.schema.names if name != "content"]
    columns = [batch.column(name) for name in kept]
    return pa.RecordBatch.from_arrays(
        [
            *columns,
            features_array(features, [r is not None for r in reasons]),
            pa.array(reasons, pa.string()) if n_failed else pa.nulls(len(reasons), pa.string()),
        ],
        names=[*kept, "features", "error"],
    )


# As FEATURIZED_SCHEMA's features: a row may be null (a rejected image), its values may not.
FEATURES_ARROW_TYPE = pa.list_(pa.field("element", pa.float32(), nullable=False))


def features_array(features: np.ndarray, missing: list[bool]) -> pa.ListArray:
    """(n, d) float32 -> Arrow list<float> of n rows of d values without copying them, row i null where
    missing[i]. Building it from the NumPy buffer instead of n arrays through pandas: the job's 8,000
    images 458 -> 475 img/s (2026-12-02, local[2], medians of 4).

    Made from buffers, not with pa.array: pyarrow imports pandas on its first pa.array call (0.2 s in each
    Python worker), and a batch without rejects never makes one."""
    n, dim = features.shape
    if len(missing) != n or n * dim > np.iinfo(np.int32).max:  # Spark reads what it gets, unchecked
        raise ValueError(f"features {features.shape} for {len(missing)} rows: not one list<float> column")
    offsets = np.arange(0, (n + 1) * dim, dim, dtype=np.int32)
    values = np.ascontiguousarray(features, dtype=np.float32).reshape(-1)
    validity = None
    if any(missing):
        validity = pa.py_buffer(np.packbits(~np.asarray(missing, dtype=bool), bitorder="little"))
    return pa.Array.from_buffers(
        FEATURES_ARROW_TYPE,
        n,
        [validity, pa.py_buffer(offsets)],
        children=[pa.Array.from_buffers(pa.float32(), len(values), [None, pa.py_buffer(values)])],
    )


# Test-only: "<path suffix>:<marker file>" makes the Python worker that meets that image exit at once, once
# (the marker records it, with the rows that task attempt had already featurized): the fault test's worker
# death in the middle of a task. Read from the worker's environment (spark.executorEnv); unset in every real
# run.
FAULT_HOOK_ENV = "FRUITS_TEST_EXIT_ON_IMAGE"
_fault_hook_rows: dict[tuple[int, int, int], int] = {}  # (stage, partition, attempt) -> rows featurized


def _test_fault_hook(paths: list[str]) -> None:
    spec = os.environ.get(FAULT_HOOK_ENV)
    if not spec:
        return
    from pyspark import TaskContext

    task = TaskContext.get()
    attempt = (task.stageId(), task.partitionId(), task.attemptNumber()) if task else (-1, -1, -1)
    suffix, marker = spec.rsplit(":", 1)
    if any(p.endswith(suffix) for p in paths) and not Path(marker).exists():
        before = _fault_hook_rows.get(attempt, 0)
        Path(marker).write_text(json.dumps({"pid": os.getpid(), "rows_featurized_before": before}))
        os._exit(17)
    _fault_hook_rows[attempt] = _fault_hook_rows.get(attempt, 0) + len(paths)


def unread_reason(length: int | None) -> str:
    """Why a listed image never reached the decoder: Spark's file source never reads empty files."""
    if length == 0:
        return EMPTY_FILE_REASON
    if length is None:
        return "not read: the file disappeared after it was listed"
    return f"not read by Spark's file source ({length} bytes); was it replaced while the job ran?"


def featurize(
    images: DataFrame,
    engine: EngineSpec,
    batch_size: int,
    inferred: Accumulator | None = None,
    rejected: Accumulator | None = None,
) -> DataFrame:
    """path, label, content -> path, label, features (array<float> 1280, null if rejected), error.

    Any other column of `images` (the features store's file identity: length, modificationTime) is passed
    through, before features. With accumulators, it also counts the images it inferred and collects
    (path, reason) of those it rejected: the job writes only the accepted rows, in one pass.
    """
    passed = [field for field in images.schema.fields if field.name != "content"]
    schema = StructType([*passed, *FEATURIZED_SCHEMA.fields[2:]])  # + features, error
    return images.mapInArrow(featurize_batches(engine, batch_size, inferred, rejected), schema)


def accepted(featurized: DataFrame) -> DataFrame:
    return featurized.where(F.col("error").isNull()).select("path", "label", "features")


def reject_rows(
    storage: Storage, image_paths: list[str], features: DataFrame, n_features: int, reasons: dict[str, str]
) -> list[tuple[str, str]]:
    """Every listed image without a row in features/ (`n_features` rows), with a reason: the decoder's when
    the engine rejected it, else why Spark's file source never read it (it skips empty files)."""
    if n_features + len(reasons) == len(image_paths) and reasons.keys() <= set(image_paths):
        return sorted(reasons.items())  # the counts add up: no path needs fetching
    seen = {row["path"] for row in features.select("path").collect()}
    return [(p, reasons.get(p) or unread_reason(storage.length(p))) for p in image_paths if p not in seen]


@dataclass(frozen=True)
class FeaturizeResult:
    inputs: Inputs
    features: DataFrame  # <output>/features read back: path, label, features
    rejects: list[tuple[str, str]]  # (path, reason) of every listed image not in features/, sorted
    n_features: int  # rows in features/
    n_inferred: int  # images inferred by successful task attempts (accumulator): see ManifestRecord
    n_reused: int = 0  # images whose features came from the features store (spark_job.features_store)

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)


def _featurize_to(spark: SparkSession, plan: RunPlan, inputs: Inputs) -> FeaturizeResult:
    """Run inference once, write features/ and rejects/."""
    sc = spark.sparkContext
    inferred = sc.accumulator(0)
    rejected = sc.accumulator([], RejectsParam())
    images = images_of(inputs.files, inputs.qualified)
    # The featurize function's only action. Accepted images go straight to features/; the rejected ones'
    # paths and reasons come back in the accumulator, merged once per successful task attempt.
    rows = featurize(images, plan.engine, plan.batch_size, inferred, rejected)
    n_features = write_features(accepted(rows), plan.output)
    return finish_stage(spark, Storage(spark), plan, inputs, n_features, inferred, rejected)


def write_features(rows: DataFrame, output: str) -> int:
    """Write <output>/features and return how many rows it holds, counted by the write itself.

    The count is an Observation (public API): computed by the write's tasks and merged only from the task
    attempts that succeeded, like the files the commit keeps. Unnamed, so it is unique: two runs in one
    session never read each other's count. Reading features/ back to count it cost a Spark job (~0.2 s).
    """
    observation = Observation()
    observed = rows.observe(observation, F.count(F.lit(1)).alias("rows"))
    features_dir = join(output, FEATURES_DIR)
    save_features(observed, features_dir, "overwrite")
    # The metrics reach the Observation through Spark's listener bus, which drops events when its queue
    # overflows, and Observation.get has no timeout: wait a bounded time, else count what was written.
    got: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: got.append(observation.get), daemon=True)
    waiter.start()
    waiter.join(OBSERVATION_WAIT_S)
    if got:
        return int(got[0]["rows"])
    log.warning("no row count from the write after %d s: counting %s", OBSERVATION_WAIT_S, features_dir)
    return rows.sparkSession.read.parquet(features_dir).count()


OBSERVATION_WAIT_S = 120


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


def finish_stage(
    spark: SparkSession,
    storage: Storage,
    plan: RunPlan,
    inputs: Inputs,
    n_features: int,
    inferred: Accumulator,
    rejected: Accumulator,
    reused: int = 0,
) -> FeaturizeResult:
    """After features/ is written (`n_features` rows, write_features): write rejects/ (every listed image
    without a row), and the stage's result, with features/ to read back (the schema given: no file is
    opened until a later stage reads it). Shared by the stage with and without a features store."""
    features = spark.read.schema(FEATURES_SCHEMA).parquet(join(plan.output, FEATURES_DIR))
    rejects = reject_rows(storage, inputs.image_paths, features, n_features, dict(rejected.value))
    write_rejects(storage, plan.output, rejects)
    return FeaturizeResult(
        inputs=inputs,
        features=features,
        rejects=rejects,
        n_features=n_features,
        n_inferred=int(inferred.value),
        n_reused=reused,
    )


REJECTS_SCHEMA = pa.schema([("path", pa.string()), ("reason", pa.string())])


def write_rejects(storage: Storage, output: str, rejects: list[tuple[str, str]]) -> None:
    """rejects/ (path, reason) as one Parquet file, written by pyarrow here on the driver, which holds the
    rows: through Spark it took a job of its own, 0.4-0.8 s of every run in a fresh JVM (measured
    2026-12-01, local[2]), for a table of a few rows."""
    import pyarrow.parquet as pq  # here: the Python workers import this module, and never write Parquet

    table = pa.table(
        {"path": [p for p, _ in rejects], "reason": [r for _, r in rejects]}, schema=REJECTS_SCHEMA
    )
    with tempfile.TemporaryDirectory(prefix="fruits-rejects-") as tmp:
        local = Path(tmp) / "part-00000.parquet"
        pq.write_table(table, local)
        storage.upload(str(local), join(output, REJECTS_DIR, local.name))


def featurize_stage(spark: SparkSession, plan: RunPlan, timings: Timings) -> FeaturizeResult:
    """The featurize stage as the job and the benchmark run it: ship the engine's files, list the input,
    check the output folder, then featurize once to features/ and rejects/.

    The workers start while the driver lists (start_stage): each worker's engine is built once, by
    whichever of its tasks comes first."""
    inputs = start_stage(spark, Storage(spark), plan, timings)
    with timings.stage("featurize"):
        return _featurize_to(spark, plan, inputs)


def start_stage(spark: SparkSession, storage: Storage, plan: RunPlan, timings: Timings) -> Inputs:
    """What the stage does first, with a features store or not: ship the engine's files to the workers,
    refuse an output folder in use, start the workers and their engines in the background
    (internals.start_python_workers), list the input ("list" in the timings), then empty the output folder
    if --overwrite (only once the input has images: a mistyped input loses nothing)."""
    for path in plan.engine_files:
        spark.sparkContext.addFile(path)
    refuse_existing_output(storage, plan)  # before any job starts
    started = internals.start_python_workers(spark, start_engine(plan.engine))
    try:
        with timings.stage("list"):
            inputs = discover(spark, storage, plan.input)
        prepare_output(storage, plan)
    except Exception:
        if started is not None:
            started.cancel(spark)
        raise
    return inputs
