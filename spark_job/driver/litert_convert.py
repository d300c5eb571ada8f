"""MobileNetV2 converted to LiteRT on the driver: a float32 `.tflite`, frozen, cached by weights sha256,
image size and TensorFlow version. The run plan ships it (plan.shipped_model); the workers run it with
spark_job.workers.litert_runner, which never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spark_job.contract.errors import JobFailedError
from spark_job.contract.names import ALLOWED_IMAGE_SIZES, FEATURE_DIM
from spark_job.driver.weights import load_network, sha256_file
from spark_job.workers.network import inference_function

log = logging.getLogger(__name__)

# Bumped whenever convert() changes what it writes for the same weights, size and TensorFlow version, so
# that caches made by an older recipe are not reused.
RECIPE = 1

# Ops the converter leaves in a file whose weights stayed variables (the unfrozen-function trap).
VARIABLE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})


class ConversionError(JobFailedError):
    """The converted model is not a usable MobileNetV2 feature extractor (wrong shapes, weights left out)."""


@dataclass(frozen=True)
class ConvertedModel:
    """A float32 .tflite file on the driver, and what it was made from."""

    path: str
    sha256: str  # of the .tflite file
    weights_sha256: str
    image_size: int
    tensorflow: str  # the version that converted it
    seconds: float  # conversion time; 0.0 on a cache hit
    cached: bool  # True when an earlier conversion was reused

    @property
    def file_name(self) -> str:
        return Path(self.path).name


def default_cache_dir() -> str:
    """$FRUITS_CACHE_DIR, else $XDG_CACHE_HOME/fruits-pipeline/litert, else under ~/.cache/."""
    if os.environ.get("FRUITS_CACHE_DIR"):
        return os.environ["FRUITS_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "fruits-pipeline" / "litert")


def tensorflow_version() -> str:
    """The installed TensorFlow's version, read from its package metadata: a cache hit needs no TF import."""
    from importlib import metadata

    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    import tensorflow as tf  # an unusual install (built from source): ask TensorFlow itself

    return str(tf.__version__)


def litert_version() -> str:
    from importlib import metadata

    return metadata.version("ai-edge-litert")


def cached_model_path(cache_dir: str, weights_sha256: str, image_size: int, tf_version: str) -> Path:
    name = f"mobilenet_v2_{image_size}_w{weights_sha256[:16]}_tf{tf_version}_r{RECIPE}.tflite"
    return Path(cache_dir) / name


def convert(
    weights_path: str,
    image_size: int,
    cache_dir: str | None = None,
    *,
    weights_sha256: str | None = None,
) -> ConvertedModel:
    """The float32 .tflite of MobileNetV2 (no top, average pool) for these weights: cached, else converted.

    A cache entry is the .tflite and a .json record of its sha256; an entry that does not match its record
    is converted again. Files are renamed into place, so drivers sharing a cache never read half a file.
    ConversionError (nothing cached) when the converted model does not pass check_converted.
    """
    cache = Path(cache_dir or default_cache_dir())
    weights_sha256 = weights_sha256 or sha256_file(Path(weights_path))
    tf_version = tensorflow_version()
    target = cached_model_path(str(cache), weights_sha256, image_size, tf_version)
    record_path = target.with_suffix(".json")
    sha256 = _cached_sha256(target, record_path)
    cached, seconds = sha256 is not None, 0.0
    if sha256 is not None:
        log.info("LiteRT model from the cache: %s", target)
    else:
        start = time.perf_counter()
        content = _convert_to_bytes(weights_path, image_size)
        seconds = round(time.perf_counter() - start, 3)
        cache.mkdir(parents=True, exist_ok=True)
        write_atomically(target, content, check=lambda path: check_converted(path, image_size))
        sha256 = hashlib.sha256(content).hexdigest()
        record = {
            "sha256": sha256,
            "bytes": len(content),
            "weights_sha256": weights_sha256,
            "image_size": image_size,
            "tensorflow": tf_version,
            "recipe": RECIPE,
            "seconds": seconds,
        }
        write_atomically(record_path, json.dumps(record, indent=2, sort_keys=True).encode())
        log.info("converted the weights to LiteRT in %.1f s: %s (%d bytes)", seconds, target, len(content))
    return ConvertedModel(
        path=str(target),
        sha256=sha256,
        weights_sha256=weights_sha256,
        image_size=image_size,
        tensorflow=tf_version,
        seconds=seconds,
        cached=cached,
    )


def _cached_sha256(target: Path, record_path: Path) -> str | None:
    """The cached file's sha256 when it matches its record, else None (with a warning if it exists)."""
    if not target.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        expected = str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("LiteRT cache entry %s has no readable record (%s): converting again", target, exc)
        return None
    actual = sha256_file(target)
    if actual != expected:
        log.warning(
            "LiteRT cache file %s is corrupt (sha256 %s..., recorded %s...): converting again",
            target,
            actual[:12],
            expected[:12],
        )
        return None
    return actual


def write_atomically(path: Path, content: bytes, check: Callable[[str], None] | None = None) -> None:
    """Write to a temporary file beside `path`, run `check` on it, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            os.fchmod(handle.fileno(), 0o644)  # mkstemp makes it private; a cache is read by other runs
        if check is not None:
            check(tmp)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _DropDeprecatedPathWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "trackable_obj" not in record.getMessage()


def _convert_to_bytes(weights_path: str, image_size: int) -> bytes:
    """Keras model -> frozen concrete function -> float32 TFLite flatbuffer. Freezing first keeps the
    weights whichever converter path TF takes (docs/decisions.md); TF calls this path deprecated, so the TF
    version is in the cache key and check_converted refuses a file with variables."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # load_network: a bad weights file is a JobInputError, as with the TF engine. The batch dimension stays
    # dynamic (its default shape is 1): workers can pick their invoke batch.
    return frozen_tflite(inference_function(weights_path, image_size, build=load_network))


def frozen_tflite(function: Any) -> bytes:
    """A tf.function with an input signature -> float32 TFLite flatbuffer, its variables frozen first.

    A function that returns a dict gets a `serving_default` signature keeping the dict's keys: freezing
    flattens the outputs (in sorted key order, tf.nest's), so the frozen function is wrapped in one that
    names them again, converted with an empty tf.Module as trackable_obj (the path that writes signatures;
    with nothing to track it cannot leave variables behind).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    absl_logger = logging.getLogger("absl")
    quiet = _DropDeprecatedPathWarning()
    absl_logger.addFilter(quiet)
    try:
        if not isinstance(concrete.structured_outputs, dict):
            return bytes(tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert())
        keys = sorted(concrete.structured_outputs)

        @tf.function(input_signature=concrete.structured_input_signature[0])
        def named(*inputs: Any) -> dict[str, Any]:
            return dict(zip(keys, frozen(*inputs), strict=True))

        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [named.get_concrete_function()], trackable_obj=tf.Module()
        )
        return bytes(converter.convert())
    finally:
        absl_logger.removeFilter(quiet)


def check_converted(model_path: str, image_size: int) -> None:
    """Refuse a .tflite that is not this feature extractor: float32 (n, S, S, 3) in, (n, 1280) out, and
    every weight a constant (no variable ops)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=model_path, num_threads=1)
    except ValueError as exc:
        raise ConversionError(f"{model_path} is not a readable LiteRT model: {exc}") from exc
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}  # LiteRT has no public op listing
    problems = []
    if len(inputs) != 1 or inputs[0]["dtype"] is not np.float32:
        problems.append(f"inputs {[(i['name'], i['dtype']) for i in inputs]}, expected one float32")
    elif inputs[0]["shape_signature"].tolist()[1:] != [image_size, image_size, 3]:
        shape = inputs[0]["shape_signature"].tolist()
        problems.append(f"input shape {shape}, expected [n, {image_size}, {image_size}, 3]")
    if len(outputs) != 1 or outputs[0]["shape_signature"].tolist()[1:] != [FEATURE_DIM]:
        shapes = [o["shape_signature"].tolist() for o in outputs]
        problems.append(f"outputs {shapes}, expected [n, {FEATURE_DIM}]")
    if ops & VARIABLE_OPS:
        problems.append(f"weights left as variables (ops {sorted(ops & VARIABLE_OPS)})")
    if problems:
        raise ConversionError(f"{model_path} is not MobileNetV2 features: " + "; ".join(problems))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m spark_job.driver.litert_convert --weights W.h5 [--image-size S] [--cache-dir D]`: convert
    (or find in the cache) and print the .tflite path; for benchmarks, and to convert ahead of a run."""
    parser = argparse.ArgumentParser(
        prog="python -m spark_job.driver.litert_convert", description=main.__doc__
    )
    parser.add_argument("--weights", required=True, help="MobileNetV2 no-top .h5 weights file")
    parser.add_argument("--image-size", type=int, default=224, choices=ALLOWED_IMAGE_SIZES)
    parser.add_argument("--cache-dir", default=None, help=f"default: {default_cache_dir()}")
    args = parser.parse_args(argv)
    if not Path(args.weights).is_file():
        parser.error(f"weights file not found: {args.weights}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model = convert(args.weights, args.image_size, args.cache_dir)
    print(json.dumps({"path": model.path, "cached": model.cached, "seconds": model.seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
