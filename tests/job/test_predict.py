"""The app's model: fit exports classifier.tflite, and `predict` runs it without Spark, as Spark would."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from spark_job.app.predict import (
    EXIT_BAD_MODEL,
    EXIT_NOTHING_READ,
    EXIT_OK,
    EXIT_USAGE,
    Classifier,
    Prediction,
    Rejected,
    main,
)
from spark_job.contract.records import FeaturizerRecord
from spark_job.driver.cli import main as cli_main
from spark_job.driver.probe import labelled
from tests.job.test_records import CLASSIFIER, featurizer_v1

REPO = Path(__file__).resolve().parents[2]
PROBABILITY_TOLERANCE = 1e-4
PCA_TOLERANCE = 1e-3


def _featurizer_doc(classifier: dict | None) -> str:
    doc = {k: v for k, v in featurizer_v1().items() if k != "model"}
    doc |= {"schema_version": 4, "network": "MobileNetV2", "architecture": "x86_64", "classifier": classifier}
    doc |= {"engine": {"name": "litert", "version": "2.3.0"}}
    return json.dumps(doc)


@pytest.fixture()
def photo(tmp_path: Path, sample_dir: Path) -> Path:
    return next((sample_dir / "Test" / "Banana").glob("*.jpg"))


def _run(capsys, *argv: object) -> tuple[int, list[str], str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


# --- errors before any photo is read: no model needed (fast tier) ------------------------------------------


def test_a_missing_model_folder_exits_3_naming_it(tmp_path: Path, photo: Path, capsys) -> None:
    code, out, err = _run(capsys, "--model", tmp_path / "nope", photo)
    assert (code, out) == (EXIT_BAD_MODEL, [])
    assert f"model folder not found: {tmp_path / 'nope'}" in err


def test_a_folder_that_is_not_a_model_exits_3(tmp_path: Path, photo: Path, capsys) -> None:
    code, _, err = _run(capsys, "--model", tmp_path, photo)
    assert code == EXIT_BAD_MODEL and "is not a model folder (no featurizer.json" in err


def test_a_corrupt_featurizer_json_exits_3(tmp_path: Path, photo: Path, capsys) -> None:
    (tmp_path / "featurizer.json").write_text("{not json")
    code, _, err = _run(capsys, "--model", tmp_path, photo)
    assert code == EXIT_BAD_MODEL and "is not a readable model" in err and "not valid JSON" in err


def test_a_model_fitted_before_the_export_says_so_and_exits_3(tmp_path: Path, photo: Path, capsys) -> None:
    (tmp_path / "featurizer.json").write_text(json.dumps({**featurizer_v1(), "schema_version": 1}))
    code, _, err = _run(capsys, "--model", tmp_path, photo)
    assert code == EXIT_BAD_MODEL
    assert "has no classifier.tflite: it was fitted before fit exported the app's classifier" in err
    assert "python -m spark_job fit" in err


def test_a_classifier_file_that_is_not_litert_exits_3(tmp_path: Path, photo: Path, capsys) -> None:
    garbage = b"not a flatbuffer" * 100
    (tmp_path / "classifier.tflite").write_bytes(garbage)
    (tmp_path / "labels.txt").write_text("Apple\nBanana\n")
    record = {**CLASSIFIER, "sha256": hashlib.sha256(garbage).hexdigest(), "bytes": len(garbage)}
    (tmp_path / "featurizer.json").write_text(_featurizer_doc(record))
    code, _, err = _run(capsys, "--model", tmp_path, photo)
    assert code == EXIT_BAD_MODEL and "is not the classifier fit exports" in err


def test_a_photo_path_that_does_not_exist_exits_2(tmp_path: Path, capsys) -> None:
    code, out, err = _run(capsys, "--model", tmp_path, tmp_path / "missing.jpg")
    assert (code, out) == (EXIT_USAGE, []) and "no such file or folder" in err


def test_a_folder_with_no_images_exits_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    code, _, err = _run(capsys, "--model", tmp_path, tmp_path / "photos")
    assert code == EXIT_USAGE and f"no JPEG/PNG images under {tmp_path / 'photos'}" in err


@pytest.mark.parametrize("argv", [["--top", "0"], ["--top", "x"], []])
def test_bad_arguments_exit_2_with_usage(argv: list[str], tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--model", str(tmp_path), *(["a.jpg"] if argv else [])])
    assert exit_.value.code == EXIT_USAGE and "usage: python -m spark_job predict" in capsys.readouterr().err


def test_the_job_cli_runs_predict_too(tmp_path: Path, photo: Path) -> None:
    assert cli_main(["predict", "--model", str(tmp_path / "nope"), str(photo)]) == EXIT_BAD_MODEL


# --- the exported file (slow: the sample's fit) -------------------------------------------------------------


def test_fit_exports_the_classifier_with_its_record(fit_run: Path) -> None:
    model = fit_run / "model"
    record = FeaturizerRecord.read(model / "featurizer.json")
    classifier = record.classifier
    assert classifier is not None
    content = (model / "classifier.tflite").read_bytes()
    assert hashlib.sha256(content).hexdigest() == classifier.sha256 and len(content) == classifier.bytes
    assert len(content) > 8_000_000  # the network's weights are in it, as constants
    manifest = json.loads((fit_run / "manifest.json").read_text())
    assert (model / "labels.txt").read_text().splitlines() == classifier.labels == manifest["classes"]
    tensors = {t.key: (t.role, t.shape) for t in classifier.tensors}
    assert tensors == {
        "images": ("input 0", [-1, 224, 224, 3]),
        "pca": ("output 0", [-1, record.k]),
        "probabilities": ("output 1", [-1, 12]),
    }
    assert classifier.preprocessing["range"].startswith("[0, 255]")
    assert manifest["timings_s"]["export_classifier"] > 0


def test_predict_equals_spark_on_the_sample_test_set(spark, fit_run: Path, transform_run: Path) -> None:
    """Fit on Training, transform Test with Spark, predict Test with the exported file: same class for
    every image, probabilities within 1e-4, PCA within 1e-3."""
    model = fit_run / "model"
    probe = PipelineModel.load(str(model / "probe"))
    rows = (
        probe.transform(labelled(spark.read.parquet(str(transform_run / "pca"))))
        .select("path", "pca", "prediction", vector_to_array(F.col("probability")).alias("probability"))
        .toPandas()
    )
    assert len(rows) == 180
    classifier = Classifier(str(model))
    worst_probability = worst_pca = 0.0
    for row in rows.itertuples():
        result = classifier.predict(Path(unquote(urlparse(row.path).path)), top=len(classifier.labels))
        assert isinstance(result, Prediction), result
        by_label = dict(result.top)
        probabilities = np.array([by_label[label] for label in classifier.labels])
        assert result.top[0][0] == classifier.labels[int(row.prediction)], row.path
        # Spark's probe has one more class, StringIndexer's for unseen labels (~1e-6): not exported.
        spark_probabilities = row.probability[: len(classifier.labels)]
        worst_probability = max(worst_probability, float(np.abs(probabilities - spark_probabilities).max()))
        worst_pca = max(worst_pca, float(np.abs(np.array(result.pca) - row.pca).max()))
    print(f"parity on {len(rows)} Test images: max |dp| {worst_probability:.2e}, max |dpca| {worst_pca:.2e}")
    assert worst_probability <= PROBABILITY_TOLERANCE
    assert worst_pca <= PCA_TOLERANCE


def test_bad_photos_get_the_jobs_reasons_and_the_rest_is_classified(
    fit_run: Path, sample_dir: Path, tmp_path: Path, capsys
) -> None:
    good = next((sample_dir / "Test" / "Orange").glob("*.jpg"))
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(good, photos / "a_good.jpg")
    (photos / "b_empty.jpg").write_bytes(b"")
    (photos / "c_text.jpg").write_bytes(b"this is not an image")
    (photos / "d_truncated.jpg").write_bytes(good.read_bytes()[:600])
    code, out, _ = _run(capsys, "--model", fit_run / "model", photos, "--json")
    assert code == EXIT_OK
    results = [json.loads(line) for line in out]
    assert [Path(r["path"]).name for r in results] == [
        "a_good.jpg",
        "b_empty.jpg",
        "c_text.jpg",
        "d_truncated.jpg",
    ]
    assert results[0]["top"][0]["label"] == "Orange" and len(results[0]["top"]) == 3
    assert len(results[0]["pca"]) == FeaturizerRecord.read(fit_run / "model" / "featurizer.json").k
    assert results[1]["error"] == "empty file (0 bytes)"
    assert results[2]["error"].startswith("not a decodable image (20 bytes)")
    assert results[3]["error"].startswith("truncated image data (600 bytes)")

    (photos / "a_good.jpg").unlink()
    code, out, err = _run(capsys, "--model", fit_run / "model", photos)
    assert code == EXIT_NOTHING_READ and "none of the 3 photos could be read" in err
    assert out[0] == f"{photos / 'b_empty.jpg'}: rejected: empty file (0 bytes)"


def test_a_truncated_classifier_file_is_refused_as_corrupt(fit_run: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for name in ("featurizer.json", "labels.txt"):
        shutil.copy(fit_run / "model" / name, model / name)
    (model / "classifier.tflite").write_bytes((fit_run / "model" / "classifier.tflite").read_bytes()[:4096])
    code, _, err = _run(capsys, "--model", model, fit_run / "model" / "labels.txt")
    assert code == EXIT_BAD_MODEL and "classifier.tflite is corrupt: 4096 bytes" in err


def test_predict_from_the_command_line_imports_neither_spark_nor_tensorflow(
    fit_run: Path, sample_dir: Path
) -> None:
    """`python -m spark_job predict` in a fresh interpreter: answers, and no pyspark/py4j/TF/keras module."""
    folder = sample_dir / "Test" / "Mango"
    argv = ["spark_job", "predict", "--model", str(fit_run / "model"), str(folder), "--top", "2"]
    probe = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    runpy.run_module('spark_job', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "heavy = {'pyspark', 'py4j', 'tensorflow', 'keras'}\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "print('EXIT', code, 'HEAVY', ','.join(heavy) or '-', file=sys.stderr)\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert "EXIT 0 HEAVY -" in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(list(folder.glob("*.jpg"))) > 0
    assert sum(line.split(": ", 1)[1].startswith("Mango") for line in lines) >= 0.9 * len(lines)
    assert all(line.count(", ") == 1 for line in lines)  # --top 2


def test_rejected_and_predicted_lines_read_as_documented() -> None:
    assert Prediction("p.jpg", [("Banana", 0.98), ("Mango", 0.01)], [1.0]).as_text() == (
        "p.jpg: Banana 0.9800, Mango 0.0100"
    )
    assert json.loads(Rejected("p.jpg", "empty file (0 bytes)").as_json()) == {
        "path": "p.jpg",
        "error": "empty file (0 bytes)",
    }


@pytest.mark.slow
def test_the_exported_math_is_sparks_scaler_pca_and_probe(spark) -> None:
    """classifier_function on synthetic features (12 of them, one constant: std 0) against Spark's own
    StandardScaler + PCA + probe transform; TF runs the function as built, before any conversion."""
    import tensorflow as tf

    from spark_job.driver.classifier_export import classifier_function, classifier_weights
    from spark_job.driver.probe import fit_probe
    from spark_job.driver.reduce import fit_pca, project

    rng = np.random.default_rng(7)
    labels = ["a", "b", "c"]
    centres = rng.normal(0, 1, (3, 12))
    rows = []
    for i in range(60):
        features = centres[i % 3] + rng.normal(0, 0.4, 12)
        features[5] = 0.25  # a constant feature: Spark's scaler maps it to 0
        rows.append((f"p{i}", labels[i % 3], [float(v) for v in features]))
    features = spark.createDataFrame(rows, "path string, label string, features array<float>")
    fit = fit_pca(features, variance=None, components=4)
    pca = project(fit.reducer, features)
    probe = fit_probe(pca)
    assert probe is not None
    expected = (
        probe.transform(labelled(pca))
        .select("path", "pca", vector_to_array(F.col("probability")).alias("probability"))
        .toPandas()
        .sort_values("path", key=lambda p: p.str[1:].astype(int))
    )
    weights = classifier_weights(fit.reducer, probe)
    assert weights.labels == labels and weights.coefficients.shape == (4, 4)  # + the unseen-label class

    def network(x: tf.Tensor, training: bool = False) -> tf.Tensor:  # "pixels" 2 x 2 x 3 = the 12 features
        return tf.reshape(x, [-1, 12])

    classify = classifier_function(network, weights, image_size=2)
    pixels = (np.array([r[2] for r in rows], dtype=np.float32).reshape(-1, 2, 2, 3) + 1.0) * 127.5
    out = classify(tf.constant(pixels))
    np.testing.assert_allclose(out["pca"].numpy(), np.stack(expected["pca"]), atol=1e-4)
    np.testing.assert_allclose(
        out["probabilities"].numpy(), np.stack(expected["probability"])[:, :3], atol=1e-5
    )
