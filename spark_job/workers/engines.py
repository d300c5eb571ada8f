"""The inference engines and their life in the Python workers.

An engine turns a batch of image bytes into features (bytes in, so that each engine picks its own batch
shape: LiteRT invokes once per image, TensorFlow infers a batch). On the driver it is an `EngineSpec`:
small, hashable, picklable, shipped with the featurize function; `worker_engine` builds it once per Python
worker. Engines: `litert` (the default; litert_runner.py, no TensorFlow) and `tensorflow` (network.py).
"""

from __future__ import annotations

import gc
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from spark_job.contract.names import FEATURE_DIM
from spark_job.workers.decode import decode_image

log = logging.getLogger(__name__)


Errors = list[Exception | None]


class Engine(Protocol):
    def featurize(self, contents: Sequence[bytes | None]) -> tuple[np.ndarray, Errors]:
        """Image bytes -> (features (n, FEATURE_DIM) float32, errors[i]: why image i failed (its row is
        zeros), else None)."""
        ...


class EngineSpec(Protocol):
    """What a worker needs to build an engine. Hashable: the key of the per-worker cache."""

    # "litert", "tensorflow": recorded in the manifest and featurizer.json, and part of the features store's
    # featurizer key, so features from different engines are never mixed.
    name: ClassVar[str]

    @property
    def image_size(self) -> int: ...

    def build(self) -> Engine: ...

    def __hash__(self) -> int: ...


def featurize_decoded(
    contents: Sequence[bytes | None], image_size: int, features: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, Errors]:
    """`Engine.featurize` for engines that infer whole batches of decoded images (float32 (n, S, S, 3) in
    [0, 255] -> (n, FEATURE_DIM)): decode each image, infer the ones that decoded in one call."""
    n = len(contents)
    out = np.zeros((n, FEATURE_DIM), dtype=np.float32)
    errors: Errors = [None] * n
    decoded: list[np.ndarray] = []
    ok: list[int] = []
    for i, data in enumerate(contents):
        try:
            if not data:
                raise ValueError("empty image data")
            decoded.append(decode_image(data, image_size))
            ok.append(i)
        except Exception as exc:  # any decoder failure rejects this image only, never the batch
            errors[i] = exc
    if ok:
        out[ok] = features(np.stack(decoded))
    return out, errors


@dataclass(frozen=True)
class LiteRTEngineSpec:
    """MobileNetV2 converted to LiteRT on the driver (spark_job/driver/litert_convert.py), shipped with
    SparkContext.addFile."""

    name: ClassVar[str] = "litert"
    model_file_name: str  # the converted .tflite, as registered with addFile
    image_size: int
    threads: int  # XNNPACK threads in each Python worker (see spark_job.driver.plan.engine_threads)

    def build(self) -> Engine:
        from pyspark import SparkFiles

        from spark_job.workers.litert_runner import worker_runner

        return worker_runner(SparkFiles.get(self.model_file_name), self.image_size, self.threads)


@dataclass(frozen=True)
class TensorFlowEngineSpec:
    """MobileNetV2 in TensorFlow, weights shipped with SparkContext.addFile under `weights_file_name`."""

    name: ClassVar[str] = "tensorflow"
    weights_file_name: str
    image_size: int
    threads: int  # TensorFlow intra-op threads per Python worker (spark_job.driver.plan.engine_threads)

    def build(self) -> TensorFlowEngine:
        return TensorFlowEngine.build(self)


class TensorFlowEngine:
    """MobileNetV2 as a traced tf.function (any batch size, traced once), MobileNetV2's preprocessing."""

    def __init__(self, infer: Callable[[np.ndarray], Any], image_size: int) -> None:
        self._infer = infer
        self._image_size = image_size

    @classmethod
    def build(cls, spec: TensorFlowEngineSpec) -> TensorFlowEngine:
        import tensorflow as tf
        from pyspark import SparkFiles

        from spark_job.workers.network import inference_function

        # TF sizes its thread pools to every core of the machine unless told; Spark runs one Python worker
        # per concurrent task, so each gets its share. Must run before TF's first op in this process.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already initialized in this reused worker: keep its pools
            log.debug("TensorFlow threads already set in this worker")
        infer = inference_function(SparkFiles.get(spec.weights_file_name), spec.image_size)
        engine = cls(infer, spec.image_size)
        # One synthetic JPEG through decode, preprocess and inference: traces the function and loads the
        # decoder now (one image: a full batch costs more than it warms, docs/decisions.md).
        engine.features(decode_image(sample_jpeg(), spec.image_size)[np.newaxis])
        return engine

    def features(self, images: np.ndarray) -> np.ndarray:
        from spark_job.workers.network import preprocess

        return np.asarray(self._infer(preprocess(images)).numpy(), dtype=np.float32)

    def featurize(self, contents: Sequence[bytes | None]) -> tuple[np.ndarray, Errors]:
        return featurize_decoded(contents, self._image_size, self.features)


def sample_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


# Per Python worker process: each engine, built by the worker's first task and kept (Spark reuses workers).
_ENGINES: dict[EngineSpec, Engine] = {}


def worker_engine(spec: EngineSpec) -> Engine:
    """The engine `spec` describes, in this Python worker: built on first use, then kept."""
    if spec in _ENGINES:
        return _ENGINES[spec]
    engine = spec.build()
    _ENGINES[spec] = engine
    # pyspark's daemon runs a full gc.collect() after every task in a reused worker: the engine's objects
    # live as long as the worker, so they are frozen out of the collector's sight (docs/decisions.md).
    gc.collect()
    gc.freeze()
    return engine
