"""The job end to end on the real Fruits-360 sample: fit on Training, transform on Test."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
import pytest
from pyspark.ml import PipelineModel

from spark_job.contract.records import spark_line
from spark_job.driver.reduce import project
from spark_job.shims.pyspark_private import PYSPARK_SERIES
from tests.job_support import read_manifest, run_cli

MANIFEST_KEYS = {
    "mode",
    "input",
    "output",
    "images_discovered",
    "images_featurized",
    "images_rejected",
    "classes",
    "image_size",
    "weights",
    "k",
    "variance_target",
    "explained_variance",
    "cumulative_variance_at_k",
    "timings_s",
    "throughput_img_s",
    "versions",
    "started_at",
    "finished_at",
}
SAMPLE_CLASSES = [
    "Apple Braeburn",
    "Apple Golden 1",
    "Apple Granny Smith",
    "Apple Red Delicious",
    "Banana",
    "Banana Lady Finger",
    "Banana Red",
    "Mango",
    "Mango Red",
    "Orange",
    "Strawberry",
    "Strawberry Wedge",
]


def test_fit_manifest_counts_and_k(fit_run: Path, weights_path: Path) -> None:
    m = read_manifest(fit_run)
    assert m.keys() >= MANIFEST_KEYS
    assert m["mode"] == "fit"
    assert (m["images_discovered"], m["images_featurized"], m["images_rejected"]) == (440, 440, 0)
    assert m["classes"] == SAMPLE_CLASSES
    assert m["image_size"] == 224
    assert m["weights"]["sha256"] == "71e4c4ec4aa24c9c951b9265d6de42e1336dcf614c2214fa6a989208615e232c"
    assert m["weights"]["source"] == str(weights_path)
    # k is the smallest reaching the target: k components reach it, k-1 do not.
    ev = np.array(m["explained_variance"])
    assert len(ev) == m["k"] > 1
    assert m["variance_target"] == 0.95
    assert ev.sum() >= 0.95 > ev[:-1].sum()
    assert m["cumulative_variance_at_k"] == pytest.approx(ev.sum())
    assert set(m["timings_s"]) >= {"list", "featurize", "fit_pca", "project"}
    assert m["throughput_img_s"] > 0
    # The session's Spark: this venv's pyspark (3.5 in .venv, 4.1 in .venv-spark41), a series the job is
    # checked on.
    assert m["versions"]["spark"] == pyspark.__version__
    assert m["versions"]["spark"].startswith(PYSPARK_SERIES)
    assert m["versions"]["ai-edge-litert"] == m["engine"]["version"] == "2.3.0"
    assert m["engine"]["name"] == "litert" and m["engine"]["model_file"].endswith(".tflite")
    assert m["engine_threads"] == 1  # spark.task.cpus
    assert m["started_at"] <= m["finished_at"]


def test_each_image_inferred_exactly_once(fit_run: Path, transform_run: Path) -> None:
    # images_inferred is a Spark accumulator incremented inside the featurize function: PCA fitting and the
    # projection read features back from Parquet and must not re-run inference.
    assert read_manifest(fit_run)["images_inferred"] == 440
    assert read_manifest(transform_run)["images_inferred"] == 180


def test_outputs_readable_without_spark(fit_run: Path) -> None:
    k = read_manifest(fit_run)["k"]
    features = pq.read_table(fit_run / "features")
    assert features.schema.names == ["path", "label", "features"]
    # A list of float32: Parquet's two-level list, whose item pyarrow names "array" (never null).
    features_type = features.schema.field("features").type
    assert pa.types.is_list(features_type) and features_type.value_type == pa.float32()
    assert not features_type.value_field.nullable
    df = features.to_pandas()
    assert len(df) == 440 and df["features"].map(len).eq(1280).all()
    assert df["path"].is_unique
    # label is the class folder directly under --input
    assert all(
        Path(p.removeprefix("file:")).parent.name == label for p, label in zip(df.path, df.label, strict=True)
    )
    pca = pd.read_parquet(fit_run / "pca")
    assert list(pca.columns) == ["path", "label", "pca"]
    assert pca["pca"].map(len).eq(k).all()
    assert pca["pca"].iloc[0].dtype == np.float32
    rejects = pq.read_table(fit_run / "rejects")
    assert rejects.schema.names == ["path", "reason"] and rejects.num_rows == 0
    assert (fit_run / "model" / "featurizer.json").is_file()


def test_saved_model_reloads_and_gives_same_pca(spark, fit_run: Path) -> None:
    model = PipelineModel.load(str(fit_run / "model" / "pipeline"))
    features = spark.read.parquet(str(fit_run / "features"))
    again = project(model, features).toPandas().sort_values("path").reset_index(drop=True)
    saved = pd.read_parquet(fit_run / "pca").sort_values("path").reset_index(drop=True)
    assert again["path"].tolist() == saved["path"].tolist()
    np.testing.assert_allclose(np.stack(again["pca"]), np.stack(saved["pca"]), atol=1e-5)


def test_transform_on_test_split(fit_run: Path, transform_run: Path) -> None:
    fit, tr = read_manifest(fit_run), read_manifest(transform_run)
    assert tr["mode"] == "transform"
    assert (tr["images_discovered"], tr["images_featurized"], tr["images_rejected"]) == (180, 180, 0)
    assert tr["classes"] == SAMPLE_CLASSES
    assert tr["k"] == fit["k"] and tr["image_size"] == fit["image_size"]
    assert tr["weights"]["sha256"] == fit["weights"]["sha256"]
    pca = pd.read_parquet(transform_run / "pca")
    assert len(pca) == 180 and pca["pca"].map(len).eq(fit["k"]).all()
    assert not (transform_run / "model").exists()


def test_transform_flat_folder_has_null_labels(spark, fit_run, sample_dir, weights_path, tmp_path) -> None:
    flat = tmp_path / "user-photos"
    flat.mkdir()
    picks = (
        sorted((sample_dir / "Test" / "Orange").glob("*.jpg"))[:3]
        + sorted((sample_dir / "Test" / "Banana").glob("*.jpg"))[:2]
    )
    for i, src in enumerate(picks):
        shutil.copy(src, flat / f"photo_{i}.JPG")  # upper-case extension counts too
    out = tmp_path / "out"
    assert (
        run_cli(
            spark,
            "transform",
            "--model",
            fit_run / "model",
            "--input",
            flat,
            "--output",
            out,
            "--weights",
            weights_path,
        )
        == 0
    )
    m = read_manifest(out)
    assert m["images_featurized"] == 5 and m["classes"] == []
    pca = pd.read_parquet(out / "pca")
    assert len(pca) == 5 and pca["label"].isna().all()


def test_fit_with_fixed_components(spark, sample_dir, weights_path, tmp_path) -> None:
    subset = tmp_path / "subset"
    for cls in ("Orange", "Banana", "Strawberry"):
        (subset / cls).mkdir(parents=True)
        for src in sorted((sample_dir / "Training" / cls).glob("*.jpg"))[:6]:
            shutil.copy(src, subset / cls / src.name)
    out = tmp_path / "fit-k"
    assert (
        run_cli(
            spark, "fit", "--input", subset, "--output", out, "--weights", weights_path, "--components", "4"
        )
        == 0
    )
    m = read_manifest(out)
    assert m["k"] == 4 and len(m["explained_variance"]) == 4 and m["variance_target"] is None
    assert pd.read_parquet(out / "pca")["pca"].map(len).eq(4).all()


def test_probe_accuracy_on_the_test_split(fit_run: Path, transform_run: Path) -> None:
    probe = read_manifest(transform_run)["probe"]
    assert probe["images"] == 180
    assert probe["accuracy"] >= 0.97
    assert 0.9 <= probe["weighted_f1"] <= 1.0
    assert sorted(probe["per_class_recall"]) == SAMPLE_CLASSES
    assert read_manifest(fit_run)["probe_train"]["accuracy"] >= probe["accuracy"]
    assert (fit_run / "model" / "probe" / "metadata").is_dir()


@pytest.mark.slow  # the real model's runs, through getfixturevalue (the conftest rule cannot see them)
@pytest.mark.parametrize("run", ["fit_run", "transform_run"])
def test_report_files(run: str, request) -> None:
    from PIL import Image

    run_dir: Path = request.getfixturevalue(run)
    m = read_manifest(run_dir)
    report = run_dir / "report"
    for name in ("explained_variance.png", "pca_scatter.png"):
        with Image.open(report / name) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 300
    summary = (report / "summary.md").read_text()
    assert f"k = {m['k']} components" in summary
    assert "| 440 |" in summary if m["mode"] == "fit" else "Accuracy **" in summary


def test_pca_spectrum_matches_numpy(fit_run: Path) -> None:
    # Reference: eigenvalues of the covariance of the standardized features, computed with NumPy. Guards
    # against the pure-Java LAPACK fallback that sometimes returned a wrong spectrum (see reduce.fit_pca).
    x = np.stack(pd.read_parquet(fit_run / "features")["features"]).astype(np.float64)
    sd = x.std(axis=0, ddof=1)
    z = (x - x.mean(axis=0)) / np.where(sd == 0, 1.0, sd)
    eigenvalues = np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False))[::-1], 0, None)
    expected = eigenvalues / eigenvalues.sum()
    m = read_manifest(fit_run)
    np.testing.assert_allclose(m["explained_variance"], expected[: m["k"]], atol=1e-8)


def test_fit_writes_a_current_featurizer_record(fit_run: Path) -> None:
    from spark_job.contract.records import FeaturizerRecord

    path = fit_run / "model" / "featurizer.json"
    record = FeaturizerRecord.read(path)
    m = read_manifest(fit_run)
    assert json.loads(path.read_text())["schema_version"] == FeaturizerRecord.SCHEMA_VERSION
    assert (record.image_size, record.k, record.weights.sha256) == (224, m["k"], m["weights"]["sha256"])
    assert record.feature_dim == 1280 and len(record.spectrum) == 1280
    assert record.variance_target == m["variance_target"] == 0.95
    assert record.architecture == platform.machine()  # what transform compares its own machine with
    assert record.engine.name == "litert" and record.engine.model_sha256 == m["engine"]["model_sha256"]
    assert record.spark == m["versions"]["spark"] == pyspark.__version__  # the Spark line transform checks


def test_transform_warns_when_the_model_was_fitted_on_another_spark_line(
    spark, fit_run: Path, sample_dir: Path, weights_path: Path, tmp_path: Path, caplog
) -> None:
    """A model fitted on the other line (emr-7.x's Spark 3.5 or emr-spark-8.x's 4.1) still transforms, with a
    warning; one of the same line (another build, as EMR's 3.5.6-amzn-1 and the local 3.5.9) without."""
    here = spark_line(pyspark.__version__)
    other = {"3.5": "4.1.1-amzn-0", "4.1": "3.5.6-amzn-2"}[here or ""]
    photos = tmp_path / "photos" / "Orange"
    photos.mkdir(parents=True)
    for src in sorted((sample_dir / "Test" / "Orange").glob("*.jpg"))[:2]:
        shutil.copy(src, photos / src.name)
    for fitted_on, warned in ((other, True), (f"{here}.0-amzn-9", False)):
        model = tmp_path / f"model-{fitted_on}"
        shutil.copytree(fit_run / "model", model)
        doc = json.loads((model / "featurizer.json").read_text())
        (model / "featurizer.json").write_text(json.dumps({**doc, "spark": fitted_on}))
        caplog.clear()
        argv = ["transform", "--model", model, "--input", photos.parent, "--weights", weights_path]
        assert run_cli(spark, *argv, "--output", tmp_path / f"out-{fitted_on}") == 0
        message = f"this model was fitted on Spark {fitted_on} and transform runs on Spark {spark.version}"
        assert (message in caplog.text) is warned, caplog.text


def test_transform_uses_the_engine_the_model_was_fitted_with(
    spark, fit_run: Path, transform_run: Path, sample_dir: Path, weights_path: Path, tmp_path: Path, caplog
) -> None:
    assert read_manifest(transform_run)["engine"] == read_manifest(fit_run)["engine"]  # litert, the default
    # The same model folder as if fitted on TensorFlow: transform without --engine runs TensorFlow, and
    # --engine litert runs LiteRT, with a warning that the features come from another engine.
    tf_model = tmp_path / "tf-model"
    shutil.copytree(fit_run / "model", tf_model)
    doc = json.loads((tf_model / "featurizer.json").read_text())
    doc["engine"] = {"name": "tensorflow", "version": read_manifest(fit_run)["versions"]["tensorflow"]}
    (tf_model / "featurizer.json").write_text(json.dumps(doc))
    photos = tmp_path / "photos" / "Orange"
    photos.mkdir(parents=True)
    for src in sorted((sample_dir / "Test" / "Orange").glob("*.jpg"))[:2]:
        shutil.copy(src, photos / src.name)
    argv = ["transform", "--model", tf_model, "--input", photos.parent, "--weights", weights_path]
    assert run_cli(spark, *argv, "--output", tmp_path / "default") == 0
    assert read_manifest(tmp_path / "default")["engine"]["name"] == "tensorflow"
    caplog.clear()
    assert run_cli(spark, *argv, "--output", tmp_path / "litert", "--engine", "litert") == 0
    assert read_manifest(tmp_path / "litert")["engine"]["name"] == "litert"
    assert "the model was fitted on tensorflow features" in caplog.text


def test_transform_reads_a_model_folder_written_before_schema_versions(
    spark, fit_run: Path, sample_dir: Path, weights_path: Path, tmp_path: Path
) -> None:
    # featurizer.json as the job wrote it before records had a schema_version (version 1: `model`, not
    # `network`, no engine): the model still transforms, with the same k, on TensorFlow, the engine it was
    # fitted with.
    old_model = tmp_path / "old-model"
    shutil.copytree(fit_run / "model", old_model)
    doc = json.loads((old_model / "featurizer.json").read_text())
    doc["model"] = doc.pop("network")
    del doc["schema_version"], doc["engine"]
    (old_model / "featurizer.json").write_text(json.dumps(doc))
    photos = tmp_path / "photos" / "Orange"
    photos.mkdir(parents=True)
    for src in sorted((sample_dir / "Test" / "Orange").glob("*.jpg"))[:4]:
        shutil.copy(src, photos / src.name)
    out = tmp_path / "out"
    argv = ["transform", "--model", old_model, "--input", photos.parent, "--output", out]
    assert run_cli(spark, *argv, "--weights", weights_path) == 0
    m = read_manifest(out)
    assert (m["images_featurized"], m["k"]) == (4, read_manifest(fit_run)["k"])
    assert m["engine"]["name"] == "tensorflow" and m["engine"]["version"] == m["versions"]["tensorflow"]
