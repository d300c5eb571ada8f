"""Decoding a photo as the featurizer sees it (Pillow, whole file, RGB, bilinear resize to S x S), and the
reasons a photo cannot be: the engines, `predict` and the benchmarks all decode here, so every path gives the
same pixels and the same words. NumPy and Pillow only.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.BILINEAR
EMPTY_FILE_REASON = "empty file (0 bytes)"
# MobileNetV2's own preprocessing (keras.applications.mobilenet_v2.preprocess_input): x / 127.5 - 1, in
# float32. Dividing by the same float32 scalar gives the very same values (tested bit for bit).
_SCALE = np.float32(127.5)
_ONE = np.float32(1.0)


def decode_resized(data: bytes, image_size: int) -> Image.Image:
    """JPEG/PNG bytes -> RGB at S x S; raises what Pillow raises on undecodable or truncated data."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decode the whole file now, so truncated data fails here
        rgb = image.convert("RGB")
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), RESAMPLE)
    return rgb


def decode_image(data: bytes, image_size: int) -> np.ndarray:
    """JPEG/PNG bytes -> float32 RGB array (size, size, 3) in [0, 255]; raises on undecodable input."""
    return np.asarray(decode_resized(data, image_size), dtype=np.float32)


def mobilenet_scale(pixels: np.ndarray) -> np.ndarray:
    """[0, 255] -> MobileNetV2's input in [-1, 1], float32, without TensorFlow: the same values as
    `preprocess_input`, bit for bit."""
    return np.subtract(np.divide(pixels, _SCALE, dtype=np.float32), _ONE)


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
