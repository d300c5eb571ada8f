"""The job's configuration: one frozen dataclass built from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from spark_job.contract.names import (
    ALLOWED_IMAGE_SIZES,
    DEFAULT_ENGINE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_VARIANCE,
    ENGINES,
    FEATURE_DIM,
    EngineName,
)
from spark_job.contract.records import Mode

DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class JobConfig:
    mode: Mode
    input: str
    output: str
    weights: str | None = None  # None in transform: use the weights the model was fitted with
    model: str | None = None  # transform only
    variance: float | None = DEFAULT_VARIANCE
    components: int | None = None
    image_size: int = DEFAULT_IMAGE_SIZE
    master: str | None = None
    overwrite: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    engine_threads: int | None = None  # None: spark.task.cpus (plan.engine_threads)
    features_store: str | None = None  # None: infer every image (spark_job/driver/store.py)
    engine: EngineName | None = DEFAULT_ENGINE  # None in transform: the engine the model was fitted with


def _variance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid variance {text!r}: expected a number in (0, 1]") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"--variance must be in (0, 1], got {value}")
    return value


def _components(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid components {text!r}: expected an integer") from None
    if not 1 <= value <= FEATURE_DIM:
        raise argparse.ArgumentTypeError(f"--components must be in [1, {FEATURE_DIM}], got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spark_job",
        description="Featurize fruit photos with MobileNetV2 and reduce them with PCA (Spark).",
    )
    sub = parser.add_subparsers(dest="mode", required=True, metavar="{fit,transform,summary,store,predict}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--input", required=True, help="folder or s3:// URI: <input>/<Class>/<images>, or flat"
        )
        p.add_argument("--output", required=True, help="folder or s3:// URI for this run's outputs")
        p.add_argument("--master", default=None, help="Spark master (default: spark-submit's, else local[*])")
        p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
        p.add_argument(
            "--batch-size",
            type=_positive_int,
            default=DEFAULT_BATCH_SIZE,
            help="images per inference batch (default %(default)s)",
        )
        p.add_argument(
            "--engine-threads",
            "--tf-threads",
            dest="engine_threads",
            type=_positive_int,
            default=None,
            help="inference threads per Python worker (default: spark.task.cpus, the cores of a task)",
        )
        p.add_argument(
            "--features-store",
            default=None,
            metavar="URI",
            help="folder or s3:// URI of the features store: infer only images it does not hold, add them",
        )

    def engine(p: argparse.ArgumentParser, default: str | None, default_help: str) -> None:
        p.add_argument(
            "--engine",
            choices=ENGINES,
            default=default,
            help=f"inference engine: litert (LiteRT with XNNPACK, no TensorFlow in the workers) or "
            f"tensorflow (default: {default_help})",
        )

    fit = sub.add_parser("fit", help="featurize, fit StandardScaler + PCA, save the model")
    common(fit)
    engine(fit, DEFAULT_ENGINE, DEFAULT_ENGINE)
    fit.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (downloaded once, on the driver), a local .h5 path, or s3:// URI",
    )
    group = fit.add_mutually_exclusive_group()
    group.add_argument(
        "--variance",
        type=_variance,
        default=None,
        help=f"smallest k reaching this explained variance, in (0, 1] (default {DEFAULT_VARIANCE})",
    )
    group.add_argument("--components", type=_components, default=None, help="fixed number of components k")
    fit.add_argument(
        "--image-size",
        type=int,
        choices=ALLOWED_IMAGE_SIZES,
        default=DEFAULT_IMAGE_SIZE,
        help="pixels the images are resized to (default %(default)s)",
    )

    transform = sub.add_parser("transform", help="put new images through a saved model")
    transform.add_argument("--model", required=True, help="the model/ folder a fit run wrote")
    common(transform)
    engine(transform, None, "the engine the model was fitted with")
    transform.add_argument(
        "--weights",
        default=None,
        help="weights file or URI (default: the source recorded in the model; must have the model's sha256)",
    )

    summary = sub.add_parser("summary", help="print a short summary of finished runs")
    summary.add_argument("runs", nargs="+", help="output folders of fit/transform runs")

    store = sub.add_parser("store", help="maintain a features store (local folder or s3:// URI)")
    actions = store.add_subparsers(dest="store_action", required=True, metavar="{stats,compact}")
    stats = actions.add_parser("stats", help="images, size and runs per featurizer key")
    compact = actions.add_parser(
        "compact", help="rewrite without duplicate rows or rows of deleted/changed files (no run writing)"
    )
    for p in (stats, compact):
        p.add_argument("store", metavar="URI", help="the features store (what runs got as --features-store)")
        p.add_argument("--master", default=None, help="Spark master (default: spark-submit's, else local[*])")
    compact.add_argument("--key", default=None, help="compact only this featurizer key's folder")

    from spark_job.app.predict import (
        add_arguments as predict_arguments,  # no pyspark: predict runs without it
    )

    predict_arguments(
        sub.add_parser("predict", help="classify photos with a model's classifier.tflite (no Spark)")
    )
    return parser


def config_from_args(args: argparse.Namespace) -> JobConfig:
    shared = {
        "input": args.input,
        "output": args.output,
        "weights": args.weights,
        "master": args.master,
        "overwrite": args.overwrite,
        "batch_size": args.batch_size,
        "engine_threads": args.engine_threads,
        "features_store": args.features_store,
        "engine": args.engine,
    }
    if args.mode == "transform":
        return JobConfig(mode="transform", model=args.model, variance=None, components=None, **shared)
    variance = args.variance
    if variance is None and args.components is None:
        variance = DEFAULT_VARIANCE
    return JobConfig(
        mode="fit", variance=variance, components=args.components, image_size=args.image_size, **shared
    )
