"""The LiteRT engine (spark_job/driver/litert_convert.py, spark_job/workers/litert_runner.py): features
equal bare Keras, the converted file holds its weights,
the worker path never imports TensorFlow, the conversion cache is reused and never trusts a corrupt file."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spark_job.driver import litert_convert as litert
from spark_job.workers.decode import decode_image, decode_resized, mobilenet_scale
from spark_job.workers.litert_runner import LiteRTRunner, worker_runner
from spark_job.workers.network import build_network, preprocess

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def converted(weights_path: Path, tmp_path_factory: pytest.TempPathFactory) -> litert.ConvertedModel:
    """The sample weights converted once for this module, in a cache of its own."""
    return litert.convert(str(weights_path), 224, str(tmp_path_factory.mktemp("litert-cache")))


def one_image_per_class(sample_dir: Path) -> list[Path]:
    return [sorted(folder.glob("*.jpg"))[0] for folder in sorted((sample_dir / "Training").iterdir())]


def jpeg_bytes(size: tuple[int, int] = (100, 100), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 200 if mode == "L" else (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_litert_features_match_bare_keras(
    converted: litert.ConvertedModel, sample_dir: Path, weights_path: Path
) -> None:
    files = one_image_per_class(sample_dir)
    contents = [p.read_bytes() for p in files]
    runner = LiteRTRunner(converted.path, 224, threads=1)
    got, errors = runner.featurize(contents)
    model = build_network(str(weights_path), 224)
    preprocessed = preprocess(np.stack([decode_image(c, 224) for c in contents]))
    expected = model.predict(preprocessed, verbose=0)
    assert errors == [None] * len(files)
    assert got.shape == expected.shape == (12, 1280) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.1  # real activations, not zeros


def test_converted_file_holds_the_weights_as_constants(converted: litert.ConvertedModel) -> None:
    path = Path(converted.path)
    # MobileNetV2 no-top has 2.26 M parameters: ~8.9 MB of float32 constants (the trap file is ~190 KB).
    assert path.stat().st_size > 8_000_000
    assert converted.cached is False and converted.seconds > 0
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["sha256"] == converted.sha256 == litert.sha256_file(path)
    assert record["weights_sha256"] == converted.weights_sha256
    assert record["image_size"] == 224 and record["recipe"] == litert.RECIPE
    litert.check_converted(converted.path, 224)  # shapes and no variable ops


@pytest.mark.slow
def test_a_conversion_that_left_the_weights_as_variables_is_refused(
    weights_path: Path, tmp_path: Path
) -> None:
    """The Keras 3 trap: the unfrozen function, with the model as trackable_obj, converts to a ~190 KB file
    that reads its weights from variables. check_converted must refuse it, and convert() must not cache it."""
    import tensorflow as tf

    model = build_network(str(weights_path), 224)
    function = tf.function(
        lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32)]
    )
    trap = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], model
    ).convert()
    assert len(trap) < 1_000_000
    trap_path = tmp_path / "trap.tflite"
    trap_path.write_bytes(trap)
    with pytest.raises(litert.ConversionError, match="weights left as variables"):
        litert.check_converted(str(trap_path), 224)


def test_a_model_that_fails_the_check_is_not_cached(
    converted: litert.ConvertedModel, weights_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litert, "_convert_to_bytes", lambda *_: b"not a flatbuffer")
    with pytest.raises(litert.ConversionError, match="not a readable LiteRT model"):
        litert.convert(str(weights_path), 224, str(tmp_path), weights_sha256=converted.weights_sha256)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its record, nor a temporary file


def test_a_model_for_another_image_size_is_refused(converted: litert.ConvertedModel) -> None:
    with pytest.raises(litert.ConversionError, match=r"input shape \[-1, 224, 224, 3\], expected \[n, 96"):
        litert.check_converted(converted.path, 96)


def test_cache_hit_returns_the_same_file_without_converting(
    converted: litert.ConvertedModel, weights_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_convert(*_: object) -> bytes:
        raise AssertionError("converted again despite a valid cache entry")

    monkeypatch.setattr(litert, "_convert_to_bytes", must_not_convert)
    mtime = Path(converted.path).stat().st_mtime_ns
    again = litert.convert(str(weights_path), 224, str(Path(converted.path).parent))
    assert again.path == converted.path and again.sha256 == converted.sha256
    assert again.cached is True and again.seconds == 0.0
    assert Path(converted.path).stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "record missing", "record unreadable"])
def test_corrupt_cache_entry_is_converted_again(
    converted: litert.ConvertedModel,
    weights_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: str,
) -> None:
    source = Path(converted.path)
    cached = tmp_path / source.name
    shutil.copy(source, cached)
    shutil.copy(source.with_suffix(".json"), cached.with_suffix(".json"))
    if damage == "truncated":
        cached.write_bytes(source.read_bytes()[: 1 << 20])
    elif damage == "overwritten":
        cached.write_bytes(b"\0" * source.stat().st_size)
    elif damage == "record missing":
        cached.with_suffix(".json").unlink()
    else:
        cached.with_suffix(".json").write_text("{not json")
    good = source.read_bytes()
    calls: list[int] = []

    def reconvert(*_: object) -> bytes:
        calls.append(1)
        return good  # the real conversion is the module fixture's: this test is about the cache

    monkeypatch.setattr(litert, "_convert_to_bytes", reconvert)
    with caplog.at_level(logging.WARNING, logger=litert.__name__):
        rebuilt = litert.convert(str(weights_path), 224, str(tmp_path))
    assert calls == [1]
    assert rebuilt.path == str(cached) and rebuilt.cached is False
    assert litert.sha256_file(cached) == converted.sha256
    assert json.loads(cached.with_suffix(".json").read_text())["sha256"] == converted.sha256
    assert "converting again" in caplog.text


def test_cache_key_has_weights_size_tensorflow_and_recipe(tmp_path: Path) -> None:
    import tensorflow as tf

    assert litert.tensorflow_version() == tf.__version__
    base = litert.cached_model_path(str(tmp_path), "ab" * 32, 224, "2.21.0")
    others = [
        litert.cached_model_path(str(tmp_path), "cd" * 32, 224, "2.21.0"),
        litert.cached_model_path(str(tmp_path), "ab" * 32, 96, "2.21.0"),
        litert.cached_model_path(str(tmp_path), "ab" * 32, 224, "2.22.0"),
    ]
    assert len({base, *others}) == 4
    assert f"_r{litert.RECIPE}." in base.name


def test_worker_path_imports_no_tensorflow(converted: litert.ConvertedModel, tmp_path: Path) -> None:
    """What a Python worker on the litert engine runs, in a fresh interpreter: no TensorFlow, no Keras."""
    image = tmp_path / "one.jpg"
    image.write_bytes(jpeg_bytes())
    script = f"""
import json, sys
from spark_job.workers.litert_runner import worker_runner
runner = worker_runner({converted.path!r}, 224, 1)
features, errors = runner.featurize([open({str(image)!r}, "rb").read()])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax"))
print(json.dumps({{"shape": list(features.shape), "errors": [str(e) for e in errors if e], "heavy": heavy}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"shape": [1, 1280], "errors": [], "heavy": []}


def test_fast_decode_gives_todays_values_bit_for_bit(sample_dir: Path) -> None:
    """decode_resized then mobilenet_scale (uint8 resize, one float32 divide and subtract), as the runner
    does, vs decode_image + TensorFlow's preprocess, on every sample image and on inputs that need a
    conversion to RGB or no resize."""
    contents = [p.read_bytes() for p in sorted((sample_dir / "Training").glob("*/*.jpg"))]
    assert len(contents) == 440
    for data in contents:
        scaled = mobilenet_scale(np.asarray(decode_resized(data, 224)))
        assert scaled.dtype == np.float32
        np.testing.assert_array_equal(scaled, preprocess(decode_image(data, 224)[np.newaxis])[0])
    gray, rgba = io.BytesIO(), io.BytesIO()
    Image.new("L", (50, 30), 128).save(gray, format="PNG")
    Image.new("RGBA", (96, 96), (10, 200, 30, 90)).save(rgba, format="PNG")
    for data, size in ((gray.getvalue(), 96), (rgba.getvalue(), 96), (jpeg_bytes((224, 224)), 224)):
        small = mobilenet_scale(np.asarray(decode_resized(data, size)))
        np.testing.assert_array_equal(small, preprocess(decode_image(data, size)[np.newaxis])[0])


def test_bad_images_are_rejected_one_by_one_with_todays_reasons(converted: litert.ConvertedModel) -> None:
    from spark_job.workers.decode import EMPTY_FILE_REASON, describe_decode_error

    good = jpeg_bytes()
    truncated = good[: len(good) // 2]
    png = io.BytesIO()
    Image.new("RGB", (100, 100), (10, 200, 30)).save(png, format="PNG")
    truncated_png = png.getvalue()[:60]  # Pillow raises "truncated" from a struct.error: a chained cause
    contents = [good, b"", b"not an image at all", truncated, truncated_png, good]
    runner = worker_runner(converted.path, 224, 1)
    assert worker_runner(converted.path, 224, 1) is runner  # one per process, kept
    features, errors = runner.featurize(contents)
    reasons = [describe_decode_error(e, c) if e else None for e, c in zip(errors, contents, strict=True)]
    assert reasons[0] is None and reasons[5] is None
    assert reasons[1] == EMPTY_FILE_REASON
    assert reasons[2].startswith("not a decodable image (19 bytes)")
    assert reasons[3].startswith("truncated image data")
    assert reasons[4].startswith("truncated image data") and errors[4].__cause__ is not None
    np.testing.assert_array_equal(features[[1, 2, 3, 4]], 0.0)
    np.testing.assert_array_equal(features[0], features[5])  # the buffer reuse leaks nothing between rows
    assert np.abs(features[0]).max() > 0.1
    assert runner.featurize([])[0].shape == (0, 1280)


def test_runner_sizes_its_input_to_batch_one_once(converted: litert.ConvertedModel) -> None:
    runner = LiteRTRunner(converted.path, 224, threads=2)
    (inp,) = runner._interpreter.get_input_details()
    assert list(inp["shape"]) == [1, 224, 224, 3]
    with pytest.raises(ValueError, match="threads"):
        LiteRTRunner(converted.path, 224, threads=0)
