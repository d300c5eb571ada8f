"""The featurize stage: every listed image through the engine once, into <output>/features and rejects/.

Pure DataFrame -> DataFrame functions (in_tasks, featurize, missing_from) and the stage that runs them
(featurize_stage): list the input on the executors, check the output folder, run the map function once
over every image (spark_job.workers.featurize_map: each Python worker reads the bytes, builds its engine
on its first task and keeps it), write the images that decoded to features/, then give every listed image
without features a reason, in rejects/. Every count is an aggregate: the driver holds no list of images.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.accumulators import Accumulator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from spark_job.driver.listing import Inputs, discover
from spark_job.driver.plan import RunPlan, prepare_output, refuse_existing_output
from spark_job.driver.session import sql_conf
from spark_job.driver.storage import Storage, join
from spark_job.driver.timings import Timings
from spark_job.workers.engines import EngineSpec
from spark_job.workers.featurize_map import featurize_batches, reject_reasons

log = logging.getLogger(__name__)

FEATURES_DIR = "features"
REJECTS_DIR = "rejects"
# Images per featurize task: several seconds of work per core (enough to hide a task's start), and small
# enough that a retried task or a slow node costs little; on a big input, thousands of tasks. 8,000 photos
# on 2 cores (2026-12-07, alternating): 500 per task 45.9-48.8 s, 1,000 42.3-44.0 s, 2,000 44.3-46.1 s.
IMAGES_PER_TASK = 1000
RANGE_SAMPLE_HINT = "spark.sql.execution.rangeExchange.sampleSizePerPartition"
RANGE_SAMPLE_PATHS = 60_000
# The rejects' first rows, for the report (all of them are in rejects/).
REJECTS_LISTED = 200

# features/ as the stages after featurize read it (the store's runs write its identity columns too).
FEATURES_SCHEMA = StructType(
    [
        StructField("path", StringType(), False),
        StructField("label", StringType(), True),
        StructField("features", ArrayType(FloatType()), True),
    ]
)
# The map function's features column: every value is written by the engine.
FEATURES_FIELD = StructField("features", ArrayType(FloatType(), containsNull=False), False)
REJECTS_DDL = "path string, reason string"
REJECTS_ARROW_SCHEMA = pa.schema([("path", pa.string()), ("reason", pa.string())])


def task_count(spark: SparkSession, n_images: int) -> int:
    """Tasks of about IMAGES_PER_TASK images, at least one per core."""
    return max(spark.sparkContext.defaultParallelism, math.ceil(n_images / IMAGES_PER_TASK))


def in_tasks(images: DataFrame, n_images: int) -> DataFrame:
    """The images spread over `task_count` tasks, each a range of paths: a class's photos stay together,
    so the files written (features/, the store's) hold narrow ranges of paths, which Parquet's statistics
    let a later filter on path skip. Run its shuffle inside `range_sampling`."""
    return images.repartitionByRange(task_count(images.sparkSession, n_images), "path")


@contextmanager
def range_sampling(spark: SparkSession, n_images: int) -> Iterator[None]:
    """Around the action that runs in_tasks' shuffle: Spark's range partitioning collects 3 x hint x tasks
    sampled paths on the driver (hint 100 by default: 30% of the paths, up to 3M of them, ~0.45 GB at 10M
    photos). A hint shrinking as the tasks grow keeps that sample near RANGE_SAMPLE_PATHS (~10 MB) up to
    20M photos; with thousands of tasks, uneven ones even out. Spark reads the hint when the shuffle runs."""
    hint = max(1, min(100, RANGE_SAMPLE_PATHS // (3 * task_count(spark, n_images))))
    with sql_conf(spark, RANGE_SAMPLE_HINT, str(hint)):
        yield


def featurize(
    images: DataFrame, engine: EngineSpec, batch_size: int, inferred: Accumulator | None = None
) -> DataFrame:
    """path, label (and any column passed through: the store's identity) -> the same and features
    (array<float> 1280), for the images that decoded; `inferred` counts them (per successful task)."""
    schema = StructType([*images.schema.fields, FEATURES_FIELD])
    return images.mapInArrow(featurize_batches(engine, batch_size, inferred), schema)


def missing_from(images: DataFrame, features: DataFrame) -> DataFrame:
    """The listed images that have no row in features/: path."""
    return images.select("path").join(features.select("path"), "path", "left_anti")


@dataclass(frozen=True)
class FeaturizeResult:
    inputs: Inputs
    features: DataFrame  # <output>/features read back: path, label, features
    n_features: int  # rows in features/
    n_inferred: int  # images inferred by successful task attempts (accumulator): see ManifestRecord
    n_rejected: int  # rows in rejects/: every listed image without features, with a reason
    rejects_sample: list[tuple[str, str]]  # the first REJECTS_LISTED of them, by path
    n_reused: int = 0  # images whose features came from the features store (spark_job.driver.store_stage)


def write_features(rows: DataFrame, output: str) -> int:
    """Write <output>/features and return how many rows it holds, read back from the files' footers (a
    count of Parquet rows reads no column)."""
    features_dir = join(output, FEATURES_DIR)
    rows.write.mode("overwrite").parquet(features_dir)
    return rows.sparkSession.read.parquet(features_dir).count()


def finish_stage(
    spark: SparkSession,
    plan: RunPlan,
    inputs: Inputs,
    n_features: int,
    inferred: Accumulator,
    reused: int = 0,
) -> FeaturizeResult:
    """After features/ is written: rejects/ (every listed image without a row, read and decoded again to say
    why), and the stage's result, with features/ to read back (the schema given: no file is opened until a
    later stage reads it). Shared by the stage with and without a features store."""
    features = spark.read.schema(FEATURES_SCHEMA).parquet(join(plan.output, FEATURES_DIR))
    rejects_dir = join(plan.output, REJECTS_DIR)
    n_rejected, sample = 0, []
    if n_features < inputs.n_images:  # else every listed image has its row (one per path)
        missing = missing_from(inputs.images, features)
        reasons = missing.mapInArrow(reject_reasons(plan.image_size), REJECTS_DDL)
        reasons.write.mode("overwrite").parquet(rejects_dir)
        rejects = spark.read.schema(REJECTS_DDL).parquet(rejects_dir)
        n_rejected = rejects.count()
        sample = rejects.orderBy("path").limit(REJECTS_LISTED).collect()
    else:
        write_no_rejects(Storage(spark), rejects_dir)
    return FeaturizeResult(
        inputs=inputs,
        features=features,
        n_features=n_features,
        n_inferred=int(inferred.value),
        n_rejected=n_rejected,
        rejects_sample=[(row["path"], row["reason"]) for row in sample],
        n_reused=reused,
    )


def write_no_rejects(storage: Storage, rejects_dir: str) -> None:
    """An empty rejects/ (path, reason), written by pyarrow here: no Spark job for a table of no rows."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="fruits-rejects-") as tmp:
        local = Path(tmp) / "part-00000.parquet"
        pq.write_table(pa.table({"path": [], "reason": []}, schema=REJECTS_ARROW_SCHEMA), local)
        storage.upload(str(local), join(rejects_dir, local.name))


def featurize_stage(spark: SparkSession, plan: RunPlan, timings: Timings) -> FeaturizeResult:
    """The featurize stage as the job and the benchmark run it: ship the engine's files, list the input,
    check the output folder, then featurize once to features/ and rejects/."""
    inputs = start_stage(spark, Storage(spark), plan, timings)
    with timings.stage("featurize"):
        inferred = spark.sparkContext.accumulator(0)
        images = in_tasks(inputs.images.select("path", "label"), inputs.n_images)
        # The map function's only action: the images that decoded go straight to features/.
        with range_sampling(spark, inputs.n_images):
            rows = featurize(images, plan.engine, plan.batch_size, inferred)
            n_features = write_features(rows, plan.output)
        return finish_stage(spark, plan, inputs, n_features, inferred)


def start_stage(spark: SparkSession, storage: Storage, plan: RunPlan, timings: Timings) -> Inputs:
    """What the stage does first, with a features store or not: ship the engine's files to the workers,
    refuse an output folder in use, list the input ("list" in the timings), then empty the output folder if
    --overwrite (only once the input has images: a mistyped input loses nothing)."""
    for path in plan.engine_files:
        spark.sparkContext.addFile(path)
    refuse_existing_output(storage, plan)  # before any job starts
    with timings.stage("list"):
        inputs = discover(spark, storage, plan.input)
    prepare_output(storage, plan)
    return inputs
