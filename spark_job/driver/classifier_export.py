"""The app's model: one LiteRT file, photo pixels in, class probabilities and the PCA vector out.

`fit` exports it once it has saved the Spark ML models, read back from the model folder (so the file holds
exactly what `transform` would load), built with TensorFlow:

    images [n, S, S, 3] float32 in [0, 255]  (decoded, RGB, resized to S x S bilinear)
      -> MobileNetV2's preprocessing (x / 127.5 - 1) -> MobileNetV2, no top, average pool -> 1280 features
      -> StandardScaler: (x - mean) * (1 / std), 0 where std is 0 (as Spark's StandardScalerModel does)
      -> PCA: scaled @ pc (1280 x k; Spark's PCAModel does not centre: the scaler did)
      -> probe: softmax(pca @ coefficients^T + intercepts), Spark's probabilities of the labelled classes

then frozen and converted to float32 (litert_convert.frozen_tflite), checked with LiteRT, and written as
classifier.tflite and labels.txt (docs/app-model.md). `predict` runs it without Spark or TensorFlow.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegressionModel
from pyspark.ml.feature import PCAModel, StandardScalerModel, StringIndexerModel

from spark_job.contract.errors import JobFailedError
from spark_job.contract.names import CLASSIFIER_FILE, FEATURE_DIM, LABELS_FILE
from spark_job.contract.records import ClassifierRecord, FeaturizerRecord, TensorRecord
from spark_job.driver.litert_convert import VARIABLE_OPS, frozen_tflite
from spark_job.driver.model_folder import PIPELINE_DIR, PROBE_DIR
from spark_job.driver.reduce import inverse_std
from spark_job.driver.storage import Storage, join
from spark_job.workers.network import build_network

log = logging.getLogger(__name__)

INPUT_NAME = "images"
PROBABILITIES = "probabilities"
PCA = "pca"
SIGNATURE = "serving_default"


def app_preprocessing(image_size: int) -> dict[str, str]:
    """What the app does to a photo before the model (the model does the rest, MobileNetV2's scaling too):
    the featurizer's own steps (spark_job.workers.decode.decode_image)."""
    return {
        "decode": "JPEG or PNG, the whole file",
        "color": "RGB (drop alpha, expand grayscale)",
        "resize": f"bilinear to {image_size} x {image_size} (no crop, aspect ratio not kept)",
        "dtype": "float32",
        "range": "[0, 255], not normalized",
        "layout": f"NHWC: [n, {image_size}, {image_size}, 3]",
    }


@dataclass(frozen=True)
class ClassifierWeights:
    """The fitted numbers the exported model holds as constants, in float64 as Spark keeps them."""

    mean: np.ndarray  # (1280,)
    std: np.ndarray  # (1280,)
    pc: np.ndarray  # (1280, k)
    # (classes, k) and (classes,): maybe one class more than the labels, StringIndexer's for unseen labels;
    # kept in the softmax as Spark does, left out of the probabilities returned (docs/app-model.md).
    coefficients: np.ndarray
    intercepts: np.ndarray
    labels: list[str]  # class i of the probabilities

    @property
    def k(self) -> int:
        return int(self.pc.shape[1])


def classifier_weights(reducer: PipelineModel, probe: PipelineModel) -> ClassifierWeights:
    """Read the scaler, PCA and probe parameters from the Spark ML models (as loaded from a model folder)."""
    scaler, pca = reducer.stages
    indexer, regression = probe.stages
    if not (
        isinstance(scaler, StandardScalerModel)
        and isinstance(pca, PCAModel)
        and isinstance(indexer, StringIndexerModel)
        and isinstance(regression, LogisticRegressionModel)
    ):
        stages = [type(s).__name__ for s in (*reducer.stages, *probe.stages)]
        raise JobFailedError(f"cannot export a classifier from the stages {stages}")
    if not (scaler.getWithMean() and scaler.getWithStd()):
        raise JobFailedError(
            "cannot export a classifier: the scaler must centre and scale (withMean, withStd)"
        )
    labels = list(indexer.labels)
    coefficients = regression.coefficientMatrix.toArray()
    intercepts = regression.interceptVector.toArray()
    if coefficients.shape[0] < len(labels):
        raise JobFailedError(f"the probe has {coefficients.shape[0]} classes for {len(labels)} labels")
    return ClassifierWeights(
        mean=scaler.mean.toArray(),
        std=scaler.std.toArray(),
        pc=pca.pc.toArray(),
        coefficients=coefficients,
        intercepts=intercepts,
        labels=labels,
    )


def classifier_function(network: Any, weights: ClassifierWeights, image_size: int) -> Any:
    """The whole classifier as a tf.function over float32 [n, S, S, 3] pixels in [0, 255]."""
    import tensorflow as tf

    mean = tf.constant(weights.mean, tf.float32, name="scaler_mean")
    scale = tf.constant(inverse_std(weights.std), tf.float32, name="scaler_inverse_std")
    pc = tf.constant(weights.pc, tf.float32, name="pca_components")
    coefficients = tf.constant(weights.coefficients.T, tf.float32, name="probe_coefficients")
    intercepts = tf.constant(weights.intercepts, tf.float32, name="probe_intercepts")
    classes = len(weights.labels)

    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, INPUT_NAME)])
    def classify(images: Any) -> dict[str, Any]:
        x = images / 127.5 - 1.0  # keras.applications.mobilenet_v2.preprocess_input
        features = network(x, training=False)
        reduced = tf.matmul((features - mean) * scale, pc)
        logits = tf.matmul(reduced, coefficients) + intercepts
        return {PROBABILITIES: tf.nn.softmax(logits)[:, :classes], PCA: reduced}

    return classify


def convert_classifier(weights_path: str, image_size: int, weights: ClassifierWeights) -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    network = build_network(weights_path, image_size)
    return frozen_tflite(classifier_function(network, weights, image_size))


def describe_classifier(model_path: str, image_size: int, weights: ClassifierWeights) -> list[TensorRecord]:
    """The file's signature as LiteRT reads it, after checking it: one float32 input `images` [n, S, S, 3],
    outputs `probabilities` [n, classes] and `pca` [n, k], every weight a constant (no variable ops)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_path, num_threads=1)
    signatures = interpreter.get_signature_list()
    if SIGNATURE not in signatures:
        raise JobFailedError(
            f"the exported classifier {model_path} has no {SIGNATURE} signature: {signatures}"
        )
    runner = interpreter.get_signature_runner(SIGNATURE)
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    expected = {
        INPUT_NAME: [-1, image_size, image_size, 3],
        PROBABILITIES: [-1, len(weights.labels)],
        PCA: [-1, weights.k],
    }
    found = {name: d["shape_signature"].tolist() for name, d in (*inputs.items(), *outputs.items())}
    dtypes = {d["dtype"] for d in (*inputs.values(), *outputs.values())}
    ops = {op["op_name"] for op in interpreter._get_ops_details()}  # LiteRT has no public op listing
    if found != expected or dtypes != {np.float32} or ops & VARIABLE_OPS:
        raise JobFailedError(
            f"the exported classifier {model_path} is not as built: tensors {found} (expected {expected}), "
            f"dtypes {dtypes}, variable ops {sorted(ops & VARIABLE_OPS)}"
        )
    # Position in the interpreter's plain output list (getOutputTensor(i) on Android, output(at:) on iOS).
    position = {d["index"]: i for i, d in enumerate(interpreter.get_output_details())}
    tensors = [
        TensorRecord(role="input 0", key=INPUT_NAME, name=inputs[INPUT_NAME]["name"], shape=found[INPUT_NAME])
    ]
    for key, detail in sorted(outputs.items(), key=lambda item: position[item[1]["index"]]):
        role = f"output {position[detail['index']]}"
        tensors.append(TensorRecord(role=role, key=key, name=detail["name"], shape=found[key]))
    return tensors


def export_classifier(
    model_dir_local: Path, weights_path: str, featurizer: FeaturizerRecord, weights: ClassifierWeights
) -> ClassifierRecord:
    """Write classifier.tflite and labels.txt into the local folder `model_dir_local`; return its record."""
    if featurizer.k != weights.k or weights.mean.shape != (FEATURE_DIM,):
        raise JobFailedError(f"model k {featurizer.k} but PCA matrix {weights.pc.shape}")
    start = time.perf_counter()
    content = convert_classifier(weights_path, featurizer.image_size, weights)
    seconds = time.perf_counter() - start
    model_dir_local.mkdir(parents=True, exist_ok=True)
    target = model_dir_local / CLASSIFIER_FILE
    target.write_bytes(content)
    (model_dir_local / LABELS_FILE).write_text("".join(f"{label}\n" for label in weights.labels))
    tensors = describe_classifier(str(target), featurizer.image_size, weights)
    log.info("exported the classifier in %.1f s: %s (%d bytes)", seconds, target, len(content))
    return ClassifierRecord(
        file=CLASSIFIER_FILE,
        labels_file=LABELS_FILE,
        sha256=hashlib.sha256(content).hexdigest(),
        bytes=len(content),
        precision="float32",
        signature=SIGNATURE,
        tensors=tensors,
        labels=list(weights.labels),
        preprocessing=app_preprocessing(featurizer.image_size),
    )


def export_to_model_folder(
    storage: Storage, model_dir: str, featurizer: FeaturizerRecord, weights_path: str, workdir: str
) -> FeaturizerRecord:
    """Export the classifier of the Spark ML models saved in `model_dir`, upload classifier.tflite and
    labels.txt beside them, and return `featurizer` with the classifier's record (written next, by the
    caller). A model without a probe (fewer than two classes) has no classifier to export."""
    probe_dir = join(model_dir, PROBE_DIR)
    if not storage.exists(join(probe_dir, "metadata")):
        log.warning("no probe in %s (fewer than two classes): no %s for the app", model_dir, CLASSIFIER_FILE)
        return featurizer
    weights = classifier_weights(
        PipelineModel.load(join(model_dir, PIPELINE_DIR)), PipelineModel.load(probe_dir)
    )
    local = Path(workdir) / "classifier"
    record = export_classifier(local, weights_path, featurizer, weights)
    for name in (CLASSIFIER_FILE, LABELS_FILE):
        storage.upload(str(local / name), join(model_dir, name))
    return replace(featurizer, classifier=record)
