"""The featurize stage: every listed image through the engine once, into <output>/features and rejects/.

Pure DataFrame -> DataFrame functions (images_of, featurize, accepted) and the stage that runs them
(featurize_stage): build the engine in the Python workers while the driver lists the input, check the output
folder, run the UDF once, write the accepted rows to features/ and every image without features, with a
reason, to rejects/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pyspark.accumulators import Accumulator, AccumulatorParam
from pyspark.ml.functions import predict_batch_udf
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from spark_job.engine import EngineSpec, WorkerWarmUp, worker_engine
from spark_job.listing import IMAGE_PATTERN, Inputs, discover
from spark_job.mobilenet import EMPTY_FILE_REASON, describe_decode_error  # with the decoder: `predict` too
from spark_job.names import FEATURE_DIM
from spark_job.plan import RunPlan, prepare_output
from spark_job.storage import Storage, join
from spark_job.timings import Timings

log = logging.getLogger(__name__)

FEATURES_DIR = "features"
REJECTS_DIR = "rejects"

FEATURIZE_RETURN_TYPE = StructType(
    [
        StructField("features", ArrayType(FloatType()), True),
        StructField("error", StringType(), True),
    ]
)

PredictFn = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


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
    """Accumulates (path, reason) pairs of the images the UDF could not decode."""

    def zero(self, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return []

    def addInPlace(self, acc: list[tuple[str, str]], more: list[tuple[str, str]]) -> list[tuple[str, str]]:
        acc.extend(more)
        return acc


def make_predict_fn_factory(
    engine: EngineSpec, inferred: Accumulator | None = None, rejected: Accumulator | None = None
) -> Callable[[], PredictFn]:
    """The `make_predict_fn` for predict_batch_udf: runs once per Python worker (pyspark's ModelCache)."""
    inferred_id = inferred.aid if inferred is not None else None
    rejected_id = rejected.aid if rejected is not None else None

    def make_predict_fn() -> PredictFn:
        # Referencing the accumulators makes cloudpickle ship them, so each task registers its copies.
        _ = (inferred, rejected)
        from pyspark.accumulators import _accumulatorRegistry

        from spark_job.mobilenet import decode_image

        built = worker_engine(engine)
        image_size = engine.image_size

        def add(accumulator_id: int | None, value: object) -> None:
            # Looked up per batch: ModelCache keeps this closure across tasks, and each task registers its
            # own copies of the accumulators.
            if accumulator_id is not None and accumulator_id in _accumulatorRegistry:
                _accumulatorRegistry[accumulator_id].add(value)

        def predict(contents: np.ndarray, paths: np.ndarray) -> dict[str, np.ndarray]:
            n = len(contents)
            features = np.zeros((n, FEATURE_DIM), dtype=np.float32)
            errors = np.full(n, None, dtype=object)
            decoded: list[np.ndarray] = []
            ok: list[int] = []
            for i, data in enumerate(contents):
                try:
                    decoded.append(decode_image(data, image_size))
                    ok.append(i)
                except Exception as exc:  # any decoder failure rejects this image only, never the batch
                    errors[i] = describe_decode_error(exc, data)
            if ok:
                features[ok] = built.features(np.stack(decoded))
            add(inferred_id, len(ok))
            if len(ok) < n:
                add(rejected_id, [(str(paths[i]), str(errors[i])) for i in range(n) if errors[i] is not None])
            return {"features": features, "error": errors}

        return predict

    return make_predict_fn


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

    With accumulators, the UDF also counts the images it inferred and collects (path, reason) of those it
    rejected: the job writes only the accepted rows, in one pass.
    """
    udf = predict_batch_udf(
        make_predict_fn_factory(engine, inferred, rejected),  # type: ignore[arg-type]  # 2 inputs: not in the hint
        return_type=FEATURIZE_RETURN_TYPE,
        batch_size=batch_size,
    ).asNondeterministic()  # else the optimizer may inline it twice (a filter on its error, its features)
    out = images.select("path", "label", udf(F.col("content"), F.col("path")).alias("r"))
    return out.select(
        "path",
        "label",
        F.when(F.col("r.error").isNull(), F.col("r.features")).alias("features"),
        F.col("r.error").alias("error"),
    )


def accepted(featurized: DataFrame) -> DataFrame:
    return featurized.where(F.col("error").isNull()).select("path", "label", "features")


def reject_rows(
    storage: Storage, image_paths: list[str], features: DataFrame, n_features: int, reasons: dict[str, str]
) -> list[tuple[str, str]]:
    """Every listed image without a row in features/ (`n_features` rows), with a reason: the decoder's when
    the UDF rejected it, else why Spark's file source never read it (it skips empty files)."""
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
    n_inferred: int  # inferences the UDF ran (accumulator): equals n_features, each image inferred once

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)


def _featurize_to(spark: SparkSession, plan: RunPlan, inputs: Inputs) -> FeaturizeResult:
    """Run inference once, write features/ and rejects/."""
    sc = spark.sparkContext
    inferred = sc.accumulator(0)
    rejected = sc.accumulator([], RejectsParam())
    images = images_of(inputs.files, inputs.qualified)
    # The UDF's only action. Accepted images go straight to features/; the rejected ones' paths and reasons
    # come back in the accumulator, which Spark updates once per successful task of an action.
    rows = featurize(images, plan.engine, plan.batch_size, inferred, rejected)
    accepted(rows).write.mode("overwrite").parquet(join(plan.output, FEATURES_DIR))
    features = spark.read.parquet(join(plan.output, FEATURES_DIR))
    n_features = features.count()  # a Parquet count reads only the footers
    rejects = reject_rows(Storage(spark), inputs.image_paths, features, n_features, dict(rejected.value))
    rejects_df = spark.createDataFrame(rejects, "path string, reason string")
    rejects_df.coalesce(1).write.mode("overwrite").parquet(join(plan.output, REJECTS_DIR))
    return FeaturizeResult(
        inputs=inputs,
        features=features,
        rejects=rejects,
        n_features=n_features,
        n_inferred=int(inferred.value),
    )


def featurize_stage(spark: SparkSession, plan: RunPlan, timings: Timings) -> FeaturizeResult:
    """The featurize stage as the job and the benchmark run it: build the engine in the Python workers while
    the driver lists the input, check the output folder, then featurize once to features/ and rejects/."""
    storage = Storage(spark)
    spark.sparkContext.addFile(plan.weights.local_path)
    warm_up = WorkerWarmUp(spark, plan.engine)
    try:
        with timings.stage("list"):
            inputs = discover(spark, storage, plan.input)
        prepare_output(storage, plan)
        with timings.stage("featurize"):
            # Submitted without waiting for the warm-up: its tasks queue behind the warm-up's (FIFO).
            result = _featurize_to(spark, plan, inputs)
    except BaseException:
        warm_up.cancel()
        raise
    warm_up.wait()
    timings.stages["warm_up_workers"] = warm_up.seconds  # overlaps "list"
    return result
