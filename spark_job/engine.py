"""The inference engine and its life in the Python workers.

An engine turns a batch of decoded images into features: `features(images)` takes float32 RGB arrays
(n, size, size, 3) in [0, 255] and returns float32 (n, FEATURE_DIM). It is described on the driver by an
`EngineSpec`: small, hashable and picklable, shipped to the workers inside the UDF, where `build()` makes the
engine once per Python worker (`worker_engine` keeps it for every later task the worker runs). Another engine
(LiteRT, a fake in the tests) is another EngineSpec; the featurize stage does not change.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


class Engine(Protocol):
    def features(self, images: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) float32 RGB in [0, 255] -> (n, FEATURE_DIM) float32."""
        ...


class EngineSpec(Protocol):
    """What a worker needs to build an engine. Hashable: the key of the per-worker cache."""

    @property
    def name(self) -> str:
        """The engine's short name (tensorflow, litert, ...): part of the features store's featurizer key,
        so features from different engines are never mixed."""
        ...

    @property
    def image_size(self) -> int: ...

    def build(self) -> Engine: ...

    def __hash__(self) -> int: ...


@dataclass(frozen=True)
class TensorFlowEngineSpec:
    """MobileNetV2 in TensorFlow, weights shipped with SparkContext.addFile under `weights_file_name`."""

    weights_file_name: str
    image_size: int
    threads: int  # TensorFlow intra-op threads in each Python worker (see spark_job.plan.engine_threads)
    name: ClassVar[str] = "tensorflow"

    def build(self) -> TensorFlowEngine:
        return TensorFlowEngine.build(self)


class TensorFlowEngine:
    """MobileNetV2 as a traced tf.function (any batch size, traced once), MobileNetV2's preprocessing."""

    def __init__(self, infer: Callable[[np.ndarray], Any]) -> None:
        self._infer = infer

    @classmethod
    def build(cls, spec: TensorFlowEngineSpec) -> TensorFlowEngine:
        import tensorflow as tf
        from pyspark import SparkFiles

        from spark_job.mobilenet import decode_image, inference_function

        # TF sizes its thread pools to every core of the machine unless told; Spark runs one Python worker
        # per concurrent task, so each gets its share. Must run before TF's first op in this process.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already initialized in this reused worker: keep its pools
            log.debug("TensorFlow threads already set in this worker")
        engine = cls(inference_function(SparkFiles.get(spec.weights_file_name), spec.image_size))
        # One synthetic JPEG through decode, preprocess and inference: traces the function and loads the
        # decoder now. (A single image: a full batch would also warm its kernels, ~0.25 s, but costs ~0.5 s.)
        engine.features(decode_image(sample_jpeg(), spec.image_size)[np.newaxis])
        return engine

    def features(self, images: np.ndarray) -> np.ndarray:
        from spark_job.mobilenet import preprocess

        return np.asarray(self._infer(preprocess(images)).numpy(), dtype=np.float32)


def sample_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


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


# Per Python worker process: the engine, built once and kept for every later task the worker runs (Spark
# reuses workers). Filled by warm_up_workers or the first batch.
_ENGINES: dict[EngineSpec, Engine] = {}


def worker_engine(spec: EngineSpec) -> Engine:
    """The engine `spec` describes, in this Python worker: built on first use, then kept."""
    if spec in _ENGINES:
        return _ENGINES[spec]
    speed_up_worker_imports()
    import pyspark.ml.functions  # noqa: F401  (predict_batch_udf's own module: imported now, not by a task)

    engine = spec.build()
    _ENGINES[spec] = engine
    # pyspark's daemon runs a full gc.collect() after every task in a reused worker; with TensorFlow and the
    # network loaded that walks ~385,000 objects, ~0.25 s per task. They live as long as the worker: freeze
    # them out of the collector's sight (measured: 0.25 s -> under 1 ms per collection).
    gc.collect()
    gc.freeze()
    return engine


def warm_up_workers(spark: SparkSession, spec: EngineSpec) -> int:
    """Start a Python worker on every task slot and build the engine in it; returns the workers warmed.

    Meant to run while the driver lists the input: the featurize tasks then find the engine ready in the
    (reused) workers instead of their first task paying TF's import, the network build and the trace (~4 s).
    Best effort: a worker it missed builds the engine on its first batch.
    """
    sc = spark.sparkContext
    # Spark pools Python workers by their environment, and its SQL runners (predict_batch_udf's) add
    # SPARK_SIMPLIFIED_TRACEBACK=1 to it. With that variable in the context's environment this plain RDD job
    # lands in the same pool, and starts at once: a DataFrame job would first spend ~1.5 s in the planner
    # on a cold driver.
    simplified = spark.conf.get("spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled", "true")
    if (simplified or "true").lower() == "true":
        sc.environment["SPARK_SIMPLIFIED_TRACEBACK"] = "1"

    def build_in_worker(_: Iterable[int]) -> list[int]:
        worker_engine(spec)
        return [os.getpid()]

    slots = sc.defaultParallelism
    return len(set(sc.parallelize(range(slots), slots).mapPartitions(build_in_worker).collect()))


class WorkerWarmUp:
    """warm_up_workers in a background thread: the engine gets built in the workers while the driver lists.

    Its Spark job runs in its own job group, so a run that fails meanwhile (bad input) cancels it.
    """

    def __init__(self, spark: SparkSession, spec: EngineSpec) -> None:
        from pyspark import InheritableThread

        self._spark = spark
        self._group = f"fruits-warm-up-{uuid.uuid4().hex[:8]}"
        self._spec = spec
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self.workers = 0
        self.seconds = 0.0
        self._thread = InheritableThread(target=self._run, name="warm-up-workers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.perf_counter()
        self._spark.sparkContext.setJobGroup(self._group, "build the engine in the Python workers", True)
        try:
            if not self._cancelled.is_set():
                self.workers = warm_up_workers(self._spark, self._spec)
        except BaseException as exc:  # reported by wait(); featurize builds the engine on demand anyway
            self._error = exc
        self.seconds = round(time.perf_counter() - start, 3)

    def cancel(self) -> None:
        """Stop the warm-up, also when its job gets submitted while this runs (cancelling is not sticky)."""
        self._cancelled.set()
        while self._thread.is_alive():
            self._spark.sparkContext.cancelJobGroup(self._group)
            self._thread.join(timeout=0.2)

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            log.warning(
                "warming up the Python workers failed (featurize tasks built the engine themselves): %s",
                str(self._error).splitlines()[0] if str(self._error) else type(self._error).__name__,
            )
        else:
            log.info("engine built ahead in %d Python worker(s) in %.1f s", self.workers, self.seconds)
