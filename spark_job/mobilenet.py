"""The MobileNetV2 network: weights resolution (driver side), building the network, image decoding.

Shared by the TensorFlow engine (spark_job/engine.py), the golden test and the bare-TensorFlow benchmark so
that all of them decode, resize and preprocess an image the same way. ("model" in this repo means the model
folder a fit run writes; the network that turns an image into features is the network.)
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from spark_job.errors import JobInputError
from spark_job.names import IMAGENET_BASE_URL, imagenet_file_name
from spark_job.records import WeightsRecord

if TYPE_CHECKING:
    from spark_job.storage import Storage

log = logging.getLogger(__name__)

RESAMPLE = Image.Resampling.BILINEAR
EMPTY_FILE_REASON = "empty file (0 bytes)"


@dataclass(frozen=True)
class ResolvedWeights:
    source: str  # what the user asked for: imagenet, a path or a URI
    local_path: str  # a file on the driver, shipped to executors with SparkContext.addFile
    sha256: str

    @property
    def file_name(self) -> str:
        return Path(self.local_path).name

    def as_record(self) -> WeightsRecord:
        return WeightsRecord(source=self.source, sha256=self.sha256, file=self.file_name)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(
    source: str, image_size: int, storage: Storage, workdir: str, *, check: bool = True
) -> ResolvedWeights:
    """Turn `imagenet`, a local path or a URI into a local file on the driver (downloaded once).

    check: build the network from it here, so a bad file fails before any distributed work (~4 s: TF's
    import and the model). The litert engine passes False: its conversion loads the weights the same way
    (load_network) when it is not cached, and a cached conversion of the same sha256 proves them good.
    """
    if source == "imagenet":
        from keras.utils import get_file

        name = imagenet_file_name(image_size)
        try:
            local = get_file(name, IMAGENET_BASE_URL + name, cache_dir=workdir, cache_subdir="weights")
        except Exception as exc:  # network errors come in many types (URLError, HTTPError, OSError)
            raise JobInputError(f"could not download the imagenet weights {name}: {exc}") from exc
    elif "://" in source and not source.startswith("file:"):
        local = str(Path(workdir) / Path(source).name)
        try:
            storage.download(source, local)
        except Exception as exc:  # py4j wraps the Hadoop IOException
            raise JobInputError(f"could not read the weights at {source}: {exc}") from exc
    else:
        local = source.removeprefix("file:")
        if not Path(local).is_file():
            raise JobInputError(f"weights file not found: {source}")
    weights = ResolvedWeights(source=source, local_path=str(local), sha256=sha256_of(str(local)))
    if check:
        load_network(weights.local_path, image_size)
    return weights


def load_network(weights_path: str, image_size: int) -> Any:
    """build_network on the driver, failing with an input error (exit 2) when the file is not MobileNetV2
    no-top weights."""
    try:
        return build_network(weights_path, image_size)
    except Exception as exc:  # h5py/keras raise OSError, ValueError, KeyError... for a bad file
        raise JobInputError(f"unreadable weights {weights_path}: {type(exc).__name__}: {exc}") from exc


def build_network(weights_path: str, image_size: int) -> Any:
    """MobileNetV2, ImageNet weights from a file, no top, global average pooling -> 1280 floats."""
    import tensorflow as tf

    return tf.keras.applications.MobileNetV2(
        include_top=False, pooling="avg", weights=weights_path, input_shape=(image_size, image_size, 3)
    )


def inference_function(weights_path: str, image_size: int) -> Any:
    """The model as a tf.function over float32 batches (any batch size): traced once, not per batch size.

    The TensorFlow engine and the bare-TensorFlow benchmark both infer through this.
    """
    import tensorflow as tf

    network = build_network(weights_path, image_size)
    return tf.function(
        lambda x: network(x, training=False),
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)],
    )


def decode_image(data: bytes, image_size: int) -> np.ndarray:
    """JPEG/PNG bytes -> float32 RGB array (size, size, 3) in [0, 255]; raises on undecodable input."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decode the whole file now, so truncated data fails here
        rgb = image.convert("RGB")
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), RESAMPLE)
    return np.asarray(rgb, dtype=np.float32)


def preprocess(batch: np.ndarray) -> np.ndarray:
    """MobileNetV2's own preprocessing: scale [0, 255] to [-1, 1]."""
    from tensorflow.keras.applications.mobilenet_v2 import preprocess_input

    return preprocess_input(batch)


def describe_decode_error(exc: Exception, data: bytes | None) -> str:
    """A human-readable reason an image could not be decoded: the job's rejects and `predict` both say it."""
    if data is None or len(data) == 0:
        return EMPTY_FILE_REASON
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return f"not a decodable image ({len(data)} bytes): {exc}"
    text = str(exc)
    if "truncated" in text.lower():
        return f"truncated image data ({len(data)} bytes): {text}"
    return f"decode failed ({type(exc).__name__}): {text}"
