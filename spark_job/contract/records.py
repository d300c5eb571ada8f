"""Typed records: a run's manifest.json and a model folder's featurizer.json.

Frozen dataclasses written by the job and read by the job (`transform`), the report, `summary`, `predict`
and `python -m ops`; each carries a `schema_version` and is read through spark_job.contract.typed_json.
No pyspark here: ops imports this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from spark_job.contract.names import (
    ALLOWED_IMAGE_SIZES,
    FEATURE_DIM,
    FEATURIZER_FILE,
    MANIFEST_FILE,
    EngineName,
)
from spark_job.contract.typed_json import RecordError, _Record

__all__ = ["RecordError"]

Mode = Literal["fit", "transform"]


def spark_line(version: str | None) -> str | None:
    """The Spark line, "major.minor", of a Spark version (3.5.9 -> 3.5, 4.1.1-amzn-0 -> 4.1); None for None
    or a text that is no version. Models and features are compared across runs by line: EMR's builds of one
    line (3.5.6-amzn-1, the local 3.5.9) run the same MLlib."""
    match = re.match(r"^(\d+)\.(\d+)\.", version or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


@dataclass(frozen=True, kw_only=True)
class WeightsRecord:
    source: str  # what the user asked for: imagenet, a path or a URI
    sha256: str
    file: str  # the file's name as shipped to the executors


@dataclass(frozen=True, kw_only=True)
class EngineRecord:
    """The inference engine that made the features, and what it ran."""

    name: EngineName
    version: str  # ai-edge-litert's or TensorFlow's version; "" in records written before engines were
    model_file: str | None = None  # litert: the converted .tflite (named by weights, size, TF, recipe)
    model_sha256: str | None = None  # litert: of that file
    converted_by_tensorflow: str | None = None  # litert: the TensorFlow that converted it


# Records written before the engine was recorded (featurizer v1-3, manifest v1-3): TensorFlow made them.
_TENSORFLOW_BEFORE_ENGINES = {"name": "tensorflow", "version": ""}


@dataclass(frozen=True, kw_only=True)
class ProbeRecord:
    """The logistic-regression probe's scores on labelled images."""

    images: int
    accuracy: float
    weighted_f1: float
    per_class_recall: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class TensorRecord:
    """One tensor of the exported classifier's signature."""

    role: str  # "input", or "output <i>": its position in the interpreter's output list
    key: str  # its name in the signature (what a signature runner takes and returns)
    name: str  # the tensor's own name in the file
    shape: list[int]  # -1: any batch size


@dataclass(frozen=True, kw_only=True)
class ClassifierRecord:
    """The app's model in the model folder (classifier.tflite, labels.txt) and how to feed it."""

    file: str
    labels_file: str
    sha256: str
    bytes: int
    precision: str  # float32
    signature: str
    tensors: list[TensorRecord]
    labels: list[str]  # probabilities[i] is labels[i]
    preprocessing: dict[str, str]  # what the app does to a photo before calling the model


@dataclass(frozen=True, kw_only=True)
class FeaturizerRecord(_Record):
    """model/featurizer.json: how `fit` featurized, so `transform` featurizes the same way.

    Version 2 renamed `model` to `network`; 3 added `architecture`, 4 `engine` and `classifier`, 5 `spark`
    (older records: None, and the engine TensorFlow, the only one then).
    """

    SCHEMA_VERSION: ClassVar[int] = 5
    FILE_NAME: ClassVar[str] = FEATURIZER_FILE

    image_size: int
    weights: WeightsRecord
    feature_dim: int
    k: int
    variance_target: float | None
    spectrum: list[float]  # the whole explained-variance spectrum of the fit (the report's curve)
    network: str
    architecture: str | None  # platform.machine() of fit's driver: features differ slightly across them
    engine: EngineRecord
    classifier: ClassifierRecord | None = None  # None: written before version 4, or no probe
    spark: str | None  # the Spark version fit ran on: transform warns on another Spark line

    @classmethod
    def _upgrade(cls, doc: dict[str, Any], version: int) -> dict[str, Any]:
        if version == 1 and "model" in doc:
            doc = {**doc, "network": doc["model"]}
        if version < 3:
            doc = {**doc, "architecture": None}
        if version < 4:
            doc = {**doc, "engine": _TENSORFLOW_BEFORE_ENGINES}
        if version < 5:
            doc = {**doc, "spark": None}
        return doc

    def _check(self, source: str) -> None:
        if self.image_size not in ALLOWED_IMAGE_SIZES:
            allowed = ", ".join(map(str, ALLOWED_IMAGE_SIZES))
            raise RecordError(f"{source}: image_size {self.image_size} is not one of {allowed}")
        if self.feature_dim != FEATURE_DIM:
            raise RecordError(f"{source}: feature_dim {self.feature_dim}, this job makes {FEATURE_DIM}")
        if not 1 <= self.k <= FEATURE_DIM:
            raise RecordError(f"{source}: k {self.k} is not in [1, {FEATURE_DIM}]")


@dataclass(frozen=True, kw_only=True)
class ManifestRecord(_Record):
    """<output>/manifest.json: what a finished run read, did and wrote (written last). Version 3 added the
    features store's keys, 4 `engine` and `engine_threads` (older runs used TensorFlow)."""

    SCHEMA_VERSION: ClassVar[int] = 4
    FILE_NAME: ClassVar[str] = MANIFEST_FILE

    mode: Mode
    input: str
    output: str
    model: str | None  # the model folder: written by fit, read by transform
    images_discovered: int
    images_featurized: int
    images_rejected: int
    # discovered = featurized + rejected; featurized = reused + inferred. Inferred: counted by successful
    # task attempts only (Spark drops a failed attempt's accumulator updates; a stage re-run after a lost
    # executor would count its images again).
    images_inferred: int
    images_reused: int  # features read from the features store (version 3; 0 before)
    images_skipped: int
    skipped_files: list[str]  # the first 100
    classes: list[str]
    image_size: int
    weights: WeightsRecord
    engine: EngineRecord
    engine_threads: int | None = None
    k: int
    variance_target: float | None
    components_requested: int | None
    explained_variance: list[float]
    cumulative_variance_at_k: float
    # fit: accuracy on its own training images; transform: on held-out labelled images.
    probe_train: ProbeRecord | None = None
    probe: ProbeRecord | None = None
    timings_s: dict[str, float]
    throughput_img_s: float
    versions: dict[str, str]
    spark_master: str
    default_parallelism: int
    report: str
    started_at: str
    finished_at: str
    # The features store (version 3): the featurizer key's folder, and this run's id in it (its run_id=
    # partition). None: the run had no --features-store.
    features_store: str | None = None
    store_run_id: str | None = None

    @classmethod
    def _upgrade(cls, doc: dict[str, Any], version: int) -> dict[str, Any]:
        if version < 3:  # no features store before version 3: every featurized image was inferred
            doc = {**doc, "images_reused": doc.get("images_reused", 0)}
        if version < 4:
            doc = {**doc, "engine": _TENSORFLOW_BEFORE_ENGINES}
        return doc

    def _document(self) -> dict[str, Any]:
        # One probe key per run, as before versioning: probe_train for fit, probe for transform.
        doc = super()._document()
        return {k: v for k, v in doc.items() if v is not None or k not in ("probe", "probe_train")}
