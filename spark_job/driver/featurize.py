"""The featurize stage: every listed image through the engine once, into <output>/features and rejects/.

Pure DataFrame -> DataFrame functions (images_of, featurize, accepted) and the stage that runs them
(featurize_stage): list the input, check the output folder, run the map function once over every image
(spark_job.workers.featurize_map; each Python worker builds its engine on its first task and keeps it),
write the accepted rows to features/ and every image without features, with a reason, to rejects/.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.accumulators import Accumulator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from spark_job.driver.listing import IMAGE_PATTERN, Inputs, discover
from spark_job.driver.plan import RunPlan, prepare_output, refuse_existing_output
from spark_job.driver.storage import Storage, join
from spark_job.driver.timings import Timings
from spark_job.workers.decode import EMPTY_FILE_REASON
from spark_job.workers.engines import EngineSpec
from spark_job.workers.featurize_map import RejectsParam, featurize_batches

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

# The map function's output: a rejected image is a null row with its reason in `error`; an accepted row's
# values are never null (the engine writes every one).
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


def label_of(qualified_input: str) -> Column:
    """The label of the `path` column: the first folder under the input (null for files directly in it: a
    flat folder)."""
    prefix_len = len(qualified_input.rstrip("/")) + 1
    relative = F.expr(f"substring(path, {prefix_len + 1})")
    return F.when(F.instr(relative, "/") > 0, F.substring_index(relative, "/", 1))


def with_label(files: DataFrame, qualified_input: str) -> DataFrame:
    """label = the first folder under the input (null for files directly in it: a flat folder)."""
    return files.withColumn("label", label_of(qualified_input))


def images_of(files: DataFrame, qualified_input: str) -> DataFrame:
    """Image files with their bytes: path, label, content."""
    images = files.where(is_image(F.col("path"))).select("path", "content")
    return with_label(images, qualified_input).select("path", "label", "content")


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


def unread_reason(length: int | None) -> str:
    """Why a listed image never reached the decoder: Spark's file source never reads empty files."""
    if length == 0:
        return EMPTY_FILE_REASON
    if length is None:
        return "not read: the file disappeared after it was listed"
    return f"not read by Spark's file source ({length} bytes); was it replaced while the job ran?"


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
    n_reused: int = 0  # images whose features came from the features store (spark_job.driver.store_stage)

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)


def write_features(rows: DataFrame, output: str) -> int:
    """Write <output>/features and return how many rows it holds, read back from the files' footers (a
    count of Parquet rows reads no column)."""
    features_dir = join(output, FEATURES_DIR)
    rows.write.mode("overwrite").parquet(features_dir)
    return rows.sparkSession.read.parquet(features_dir).count()


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
    rows: through Spark it took a job of its own for a table of a few rows."""
    import pyarrow.parquet as pq

    table = pa.table(
        {"path": [p for p, _ in rejects], "reason": [r for _, r in rejects]}, schema=REJECTS_SCHEMA
    )
    with tempfile.TemporaryDirectory(prefix="fruits-rejects-") as tmp:
        local = Path(tmp) / "part-00000.parquet"
        pq.write_table(table, local)
        storage.upload(str(local), join(output, REJECTS_DIR, local.name))


def featurize_stage(spark: SparkSession, plan: RunPlan, timings: Timings) -> FeaturizeResult:
    """The featurize stage as the job and the benchmark run it: ship the engine's files, list the input,
    check the output folder, then featurize once to features/ and rejects/."""
    inputs = start_stage(spark, Storage(spark), plan, timings)
    with timings.stage("featurize"):
        sc = spark.sparkContext
        inferred = sc.accumulator(0)
        rejected = sc.accumulator([], RejectsParam())
        # The map function's only action. Accepted images go straight to features/; the rejected ones'
        # paths and reasons come back in the accumulator, merged once per successful task attempt.
        rows = featurize(
            images_of(inputs.files, inputs.qualified), plan.engine, plan.batch_size, inferred, rejected
        )
        n_features = write_features(accepted(rows), plan.output)
        return finish_stage(spark, Storage(spark), plan, inputs, n_features, inferred, rejected)


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
