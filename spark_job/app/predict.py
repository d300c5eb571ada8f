"""`python -m spark_job predict --model DIR PHOTO_OR_FOLDER... [--top 3] [--json]`: the app's model on photos.

Runs the model folder's classifier.tflite with LiteRT: no JVM, no Spark, no TensorFlow (tests/job/
test_predict.py checks it in a fresh interpreter). Photos are decoded by the job's own decoder
(spark_job.workers.decode), as featurizer.json's `classifier.preprocessing` says. One line per photo, in
the order given; the output formats and exit statuses (EXIT_*) are in docs/app-model.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from spark_job.contract.errors import JobInputError
from spark_job.contract.names import CLASSIFIER_FILE, FEATURIZER_FILE, IMAGE_EXTENSIONS, LABELS_FILE
from spark_job.contract.records import ClassifierRecord, FeaturizerRecord, RecordError
from spark_job.workers.decode import decode_image, describe_decode_error

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOTHING_READ = 1
EXIT_USAGE = 2
EXIT_BAD_MODEL = 3
PROG = "python -m spark_job predict"


class ModelFolderError(JobInputError):
    """The model folder cannot give a classifier: exit status 3."""


class PhotoPathError(JobInputError):
    """A photo path that does not exist, or a folder with no images: exit status 2."""


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]
    pca: list[float]

    def as_text(self) -> str:
        return f"{self.path}: " + ", ".join(f"{label} {p:.4f}" for label, p in self.top)

    def as_json(self) -> str:
        top = [{"label": label, "probability": p} for label, p in self.top]
        return json.dumps({"path": self.path, "top": top, "pca": self.pca})


@dataclass(frozen=True)
class Rejected:
    path: str
    reason: str

    def as_text(self) -> str:
        return f"{self.path}: rejected: {self.reason}"

    def as_json(self) -> str:
        return json.dumps({"path": self.path, "error": self.reason})


class Classifier:
    """A model folder's classifier.tflite in one LiteRT interpreter, fed one photo per invoke (batch 1)."""

    def __init__(self, model_dir: str, threads: int = 1) -> None:
        self.record, self.labels, model_path = _read_model_folder(Path(model_dir))
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
            runner = interpreter.get_signature_runner(self.record.signature)
            inputs, outputs = runner.get_input_details(), runner.get_output_details()
            (image_input,) = inputs.values()
            probabilities, pca = outputs["probabilities"], outputs["pca"]
        except (ValueError, KeyError) as exc:  # not a LiteRT file, or not this signature
            raise ModelFolderError(f"{model_path} is not the classifier fit exports: {exc}") from exc
        self.image_size = int(image_input["shape_signature"][1])
        if probabilities["shape_signature"].tolist()[1:] != [len(self.labels)]:
            raise ModelFolderError(
                f"{model_path} gives {probabilities['shape_signature'][1]} probabilities "
                f"for the {len(self.labels)} classes of {LABELS_FILE}"
            )
        # The signature runner only names the tensors; photos go through the plain interpreter (its input's
        # default shape is batch 1: nothing to resize), which allocates only once the runner is gone.
        del runner
        interpreter.allocate_tensors()
        self._interpreter = interpreter
        self._input, self._probabilities, self._pca = (
            image_input["index"],
            probabilities["index"],
            pca["index"],
        )

    def classify(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One photo's pixels, float32 (S, S, 3) in [0, 255] -> (probabilities, pca)."""
        self._interpreter.set_tensor(self._input, pixels[np.newaxis])
        self._interpreter.invoke()
        return (
            self._interpreter.get_tensor(self._probabilities)[0],
            self._interpreter.get_tensor(self._pca)[0],
        )

    def predict(self, path: Path, top: int) -> Prediction | Rejected:
        """A photo file's top classes and PCA vector, or why it could not be read (the job's reasons)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            return Rejected(str(path), f"cannot read the file: {exc.strerror or exc}")
        try:
            if not data:
                raise ValueError("empty image data")
            pixels = decode_image(data, self.image_size)
        except Exception as exc:  # any decoder failure rejects this photo only
            return Rejected(str(path), describe_decode_error(exc, data))
        probabilities, pca = self.classify(pixels)
        best = np.argsort(-probabilities, kind="stable")[:top]
        return Prediction(
            path=str(path),
            top=[(self.labels[i], round(float(probabilities[i]), 6)) for i in best],
            pca=[float(v) for v in pca],
        )


def _read_model_folder(model_dir: Path) -> tuple[ClassifierRecord, list[str], Path]:
    if not model_dir.is_dir():
        raise ModelFolderError(f"model folder not found: {model_dir}")
    meta = model_dir / FEATURIZER_FILE
    if not meta.is_file():
        raise ModelFolderError(
            f"{model_dir} is not a model folder (no {FEATURIZER_FILE}: pass the model/ a fit wrote)"
        )
    try:
        featurizer = FeaturizerRecord.read(meta)
    except RecordError as exc:
        raise ModelFolderError(f"{model_dir} is not a readable model: {exc}") from exc
    model_path = model_dir / CLASSIFIER_FILE
    if featurizer.classifier is None or not model_path.is_file():
        if featurizer.classifier is not None:  # recorded, then lost
            raise ModelFolderError(f"{model_dir} has lost its {CLASSIFIER_FILE} (featurizer.json records it)")
        raise ModelFolderError(
            f"{model_dir} has no {CLASSIFIER_FILE}: it was fitted before fit exported the app's classifier "
            "(or with fewer than two classes). Run `python -m spark_job fit` again to get one"
        )
    record = featurizer.classifier
    content = model_path.read_bytes()
    if hashlib.sha256(content).hexdigest() != record.sha256:
        raise ModelFolderError(
            f"{model_path} is corrupt: {len(content)} bytes whose sha256 differs from the one "
            f"{FEATURIZER_FILE} recorded ({record.bytes} bytes)"
        )
    try:
        labels = (model_dir / LABELS_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"cannot read {model_dir / LABELS_FILE}: {exc}") from exc
    if labels != record.labels:
        raise ModelFolderError(
            f"{model_dir / LABELS_FILE} does not list the classes {FEATURIZER_FILE} records"
        )
    return record, labels, model_path


def photo_paths(arguments: Sequence[str]) -> list[Path]:
    """Files as given; folders expanded to their JPEG/PNG files (recursively, sorted). Raises PhotoPathError
    for a path that does not exist or a folder without images, before any photo is read."""
    photos: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_image_name(p.name))
            if not found:
                raise PhotoPathError(f"no JPEG/PNG images under {argument} ({', '.join(IMAGE_EXTENSIONS)})")
            photos.extend(found)
        elif path.exists():
            photos.append(path)
        else:
            raise PhotoPathError(f"no such file or folder: {argument}")
    return photos


def _is_image_name(name: str) -> bool:
    return name.lower().rsplit(".", 1)[-1] in IMAGE_EXTENSIONS


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--model", required=True, help="the model/ folder a fit run wrote (with classifier.tflite)"
    )
    parser.add_argument(
        "photos", nargs="+", metavar="PHOTO_OR_FOLDER", help="JPEG/PNG files, or folders of them"
    )
    parser.add_argument(
        "--top", type=_positive_int, default=3, help="classes shown per photo (default %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per photo: path, top, pca")
    parser.add_argument(
        "--threads", type=_positive_int, default=1, help="LiteRT (XNNPACK) threads (default %(default)s)"
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Classify args.photos with args.model's classifier; the exit status: one of EXIT_*."""
    out, err = out or sys.stdout, err or sys.stderr
    start = time.perf_counter()
    try:
        photos = photo_paths(args.photos)
        classifier = Classifier(args.model, threads=args.threads)
    except ModelFolderError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_BAD_MODEL
    except PhotoPathError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    classified = 0
    top = min(args.top, len(classifier.labels))
    for result in (classifier.predict(photo, top) for photo in photos):
        out.write((result.as_json() if args.json else result.as_text()) + "\n")
        out.flush()  # an answer as soon as it exists (a pipe would otherwise hold it)
        classified += isinstance(result, Prediction)
    rejected = len(photos) - classified
    log.info("%d photos classified, %d rejected in %.2f s", classified, rejected, time.perf_counter() - start)
    if classified == 0:
        err.write(f"{PROG}: error: none of the {len(photos)} photos could be read\n")
        return EXIT_NOTHING_READ
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog=PROG,
            description="Classify fruit photos with a model folder's classifier.tflite (LiteRT, no Spark).",
            epilog="exit status: 0 classified, 1 no photo readable, 2 bad arguments or photo paths, "
            "3 unusable model folder",
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 with usage on bad arguments
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return run(args)
    except BrokenPipeError:  # `predict ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return EXIT_OK
