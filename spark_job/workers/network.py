"""The MobileNetV2 network in TensorFlow: ImageNet weights from a file, no top, average pool -> 1280 floats,
built and preprocessed the same way for the TensorFlow engine, the LiteRT conversion, the classifier export
and the bare-TensorFlow benchmark. ("model" in this repo means the model folder a fit run writes.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def build_network(weights_path: str, image_size: int) -> Any:
    """MobileNetV2, ImageNet weights from a file, no top, global average pooling -> 1280 floats."""
    import tensorflow as tf

    return tf.keras.applications.MobileNetV2(
        include_top=False, pooling="avg", weights=weights_path, input_shape=(image_size, image_size, 3)
    )


def inference_function(
    weights_path: str, image_size: int, build: Callable[[str, int], Any] = build_network
) -> Any:
    """The network as a tf.function over float32 batches (any batch size): traced once, not per batch size."""
    import tensorflow as tf

    network = build(weights_path, image_size)
    return tf.function(
        lambda x: network(x, training=False),
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)],
    )


def preprocess(batch: np.ndarray) -> np.ndarray:
    """MobileNetV2's own preprocessing: scale [0, 255] to [-1, 1]."""
    from tensorflow.keras.applications.mobilenet_v2 import preprocess_input

    return preprocess_input(batch)
