"""Listing input images and featurizing them with `predict_batch_udf` (pure DataFrame -> DataFrame)."""

from __future__ import annotations

import gc
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.accumulators import Accumulator, AccumulatorParam
from pyspark.ml.functions import predict_batch_udf
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from spark_job.config import FEATURE_DIM

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
IMAGE_PATTERN = re.compile(r"\.(" + "|".join(IMAGE_EXTENSIONS) + r")$")

EMPTY_FILE_REASON = "empty file (0 bytes)"

FEATURIZE_RETURN_TYPE = StructType(
    [
        StructField("features", ArrayType(FloatType()), True),
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


def binary_files(spark: SparkSession, input_uri: str) -> DataFrame:
    """Every file under input_uri, recursively: path, modificationTime, length, content (read lazily).

    Spark's file source leaves out hidden files and folders (names starting with '_' or '.') and never
    reads empty files; the job accounts for the latter itself.
    """
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(input_uri)


def images_of(files: DataFrame, qualified_input: str) -> DataFrame:
    """Image files with their bytes: path, label, content."""
    images = files.where(is_image(F.col("path"))).select("path", "content")
    return with_label(images, qualified_input).select("path", "label", "content")


def speed_up_worker_imports() -> None:
    """Stop pyspark's Python worker from re-reading every zip on sys.path for every task.

    The worker calls importlib.invalidate_caches() at each task; on CPython 3.10 and 3.11 that re-reads the
    directory of every zip archive imported from (pyspark.zip, py4j, our --py-files zip): ~0.3 s per task
    here, a third of the time of a 32-image task (CPython gh-103200, fixed in 3.12; Spark SPARK-54744,
    fixed after 3.5). Re-read an archive only when it changed on disk, as 3.12 does.
    """
    import zipimport

    original = zipimport.zipimporter.invalidate_caches
    if sys.version_info >= (3, 12) or getattr(original, "only_when_changed", False):
        return

    stamps: dict[str, int | None] = {}  # archive -> mtime when last read, shared by its importers

    def invalidate_caches(self: zipimport.zipimporter) -> None:
        try:
            stamp: int | None = Path(self.archive).stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp is None or stamps.get(self.archive) != stamp:
            stamps[self.archive] = stamp
            original(self)

    invalidate_caches.only_when_changed = True  # type: ignore[attr-defined]
    zipimport.zipimporter.invalidate_caches = invalidate_caches  # type: ignore[method-assign]


# Per Python worker process: the model, built once and kept for every later task the worker runs (Spark
# reuses workers). Keyed by what the model depends on; filled by warm_up_workers or the first batch.
_MODELS: dict[tuple[str, int, int], Callable[[np.ndarray], Any]] = {}


def worker_model(weights_file_name: str, image_size: int, tf_threads: int) -> Callable[[np.ndarray], Any]:
    """MobileNetV2 as a traced tf.function in this Python worker: built on first use, then kept."""
    key = (weights_file_name, image_size, tf_threads)
    if key in _MODELS:
        return _MODELS[key]
    speed_up_worker_imports()
    import pyspark.ml.functions  # noqa: F401  (predict_batch_udf's own module: imported now, not by a task)
    import tensorflow as tf
    from pyspark import SparkFiles

    from spark_job.model import decode_image, inference_function, preprocess

    # TF sizes its thread pools to every core of the machine unless told; Spark runs one Python worker
    # per concurrent task, so each gets its share. Must run before TF's first op in this process.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialized in this reused worker: keep its pools
        log.debug("TensorFlow threads already set in this worker")

    infer = inference_function(SparkFiles.get(weights_file_name), image_size)
    # One synthetic JPEG through decode, preprocess and inference: traces the function and loads the
    # decoder now. (A single image: a full batch would also warm its kernels, ~0.25 s, but costs ~0.5 s.)
    infer(preprocess(decode_image(sample_jpeg(), image_size)[np.newaxis]))
    _MODELS[key] = infer
    # pyspark's daemon runs a full gc.collect() after every task in a reused worker; with TensorFlow and the
    # model loaded that walks ~385,000 objects, ~0.25 s per task. They live as long as the worker: freeze
    # them out of the collector's sight (measured: 0.25 s -> under 1 ms per collection).
    gc.collect()
    gc.freeze()
    return infer


def sample_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def warm_up_workers(spark: SparkSession, weights_file_name: str, image_size: int, tf_threads: int) -> int:
    """Start a Python worker on every task slot and build the model in it; returns the workers warmed.

    Meant to run while the driver lists the input: the featurize tasks then find the model ready in the
    (reused) workers instead of their first task paying TF's import, the model build and the trace (~4 s).
    Best effort: a worker it missed builds the model on its first batch.
    """
    sc = spark.sparkContext
    # Spark pools Python workers by their environment, and its SQL runners (predict_batch_udf's) add
    # SPARK_SIMPLIFIED_TRACEBACK=1 to it. With that variable in the context's environment this plain RDD job
    # lands in the same pool, and starts at once: a DataFrame job would first spend ~1.5 s in the planner
    # on a cold driver.
    simplified = spark.conf.get("spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled", "true")
    if simplified.lower() == "true":
        sc.environment["SPARK_SIMPLIFIED_TRACEBACK"] = "1"

    def build_in_worker(_: Iterable[int]) -> list[int]:
        worker_model(weights_file_name, image_size, tf_threads)
        return [os.getpid()]

    slots = sc.defaultParallelism
    return len(set(sc.parallelize(range(slots), slots).mapPartitions(build_in_worker).collect()))


class RejectsParam(AccumulatorParam):
    """Accumulates (path, reason) pairs of the images the UDF could not decode."""

    def zero(self, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return []

    def addInPlace(self, acc: list[tuple[str, str]], more: list[tuple[str, str]]) -> list[tuple[str, str]]:
        acc.extend(more)
        return acc


def make_predict_fn_factory(
    weights_file_name: str,
    image_size: int,
    tf_threads: int,
    inferred: Accumulator | None = None,
    rejected: Accumulator | None = None,
) -> Callable[[], Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]]:
    """The `make_predict_fn` for predict_batch_udf: runs once per Python worker (pyspark's ModelCache)."""
    inferred_id = inferred.aid if inferred is not None else None
    rejected_id = rejected.aid if rejected is not None else None

    def make_predict_fn() -> Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]:
        # Referencing the accumulators makes cloudpickle ship them, so each task registers its copies.
        _ = (inferred, rejected)
        from pyspark.accumulators import _accumulatorRegistry

        from spark_job.model import decode_image, preprocess

        infer = worker_model(weights_file_name, image_size, tf_threads)

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
                features[ok] = infer(preprocess(np.stack(decoded))).numpy()
            add(inferred_id, len(ok))
            if len(ok) < n:
                add(rejected_id, [(str(paths[i]), str(errors[i])) for i in range(n) if errors[i] is not None])
            return {"features": features, "error": errors}

        return predict

    return make_predict_fn


def describe_decode_error(exc: Exception, data: bytes | None) -> str:
    """A human-readable reason an image could not be decoded."""
    if data is None or len(data) == 0:
        return EMPTY_FILE_REASON
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return f"not a decodable image ({len(data)} bytes): {exc}"
    text = str(exc)
    if "truncated" in text.lower():
        return f"truncated image data ({len(data)} bytes): {text}"
    return f"decode failed ({type(exc).__name__}): {text}"


def unread_reason(length: int | None) -> str:
    """Why a listed image never reached the decoder: Spark's file source never reads empty files."""
    if length == 0:
        return EMPTY_FILE_REASON
    if length is None:
        return "not read: the file disappeared after it was listed"
    return f"not read by Spark's file source ({length} bytes); was it replaced while the job ran?"


def featurize(
    images: DataFrame,
    weights_file_name: str,
    image_size: int,
    batch_size: int,
    tf_threads: int,
    inferred: Accumulator | None = None,
    rejected: Accumulator | None = None,
) -> DataFrame:
    """path, label, content -> path, label, features (array<float> 1280, null if rejected), error.

    With accumulators, the UDF also counts the images it inferred and collects (path, reason) of those it
    rejected: the job writes only the accepted rows, in one pass.
    """
    udf = predict_batch_udf(
        make_predict_fn_factory(weights_file_name, image_size, tf_threads, inferred, rejected),
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


def default_tf_threads(spark: SparkSession) -> int:
    env = os.environ.get("TF_NUM_INTRAOP_THREADS")
    if env:
        return int(env)
    return int(spark.conf.get("spark.task.cpus", "1"))
