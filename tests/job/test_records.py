"""manifest.json and featurizer.json as typed records: round trip, older versions, and every kind of
malformed record refused as a JobInputError that names the file and the key (no Spark, no model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spark_job.contract.errors import JobInputError
from spark_job.contract.records import (
    EngineRecord,
    FeaturizerRecord,
    ManifestRecord,
    ProbeRecord,
    RecordError,
    WeightsRecord,
    spark_line,
)

WEIGHTS = {"source": "imagenet", "sha256": "ab" * 32, "file": "w.h5"}


def manifest_v1(mode: str = "fit") -> dict[str, Any]:
    """A manifest as the job wrote it before records had a schema_version."""
    probe = {"images": 180, "accuracy": 0.994, "weighted_f1": 0.9941, "per_class_recall": {"Banana": 1.0}}
    return {
        "mode": mode,
        "input": "data/Training",
        "output": "/tmp/out",
        "model": "/tmp/out/model",
        "images_discovered": 441,
        "images_featurized": 440,
        "images_rejected": 1,
        "images_inferred": 440,
        "images_skipped": 0,
        "skipped_files": [],
        "classes": ["Banana", "Orange"],
        "image_size": 224,
        "weights": WEIGHTS,
        "k": 2,
        "variance_target": 0.95,
        "components_requested": None,
        "explained_variance": [0.9, 0.06],
        "cumulative_variance_at_k": 0.96,
        ("probe_train" if mode == "fit" else "probe"): probe,
        "timings_s": {"list": 0.5, "featurize": 10},
        "throughput_img_s": 44.0,
        "versions": {"python": "3.11.9", "spark": "3.5.9", "tensorflow": "2.21.0"},
        "spark_master": "local[2]",
        "default_parallelism": 2,
        "report": "/tmp/out/report",
        "started_at": "2026-12-01T19:00:00+00:00",
        "finished_at": "2026-12-01T19:01:00+00:00",
    }


def featurizer_v1() -> dict[str, Any]:
    return {
        "image_size": 224,
        "weights": WEIGHTS,
        "feature_dim": 1280,
        "k": 2,
        "variance_target": 0.95,
        "spectrum": [0.9, 0.06, 0.04],
        "model": "MobileNetV2(include_top=False, pooling='avg')",
    }


def test_manifest_round_trip_and_one_probe_key_per_mode() -> None:
    for mode, key, other in (("fit", "probe_train", "probe"), ("transform", "probe", "probe_train")):
        record = ManifestRecord.from_json(json.dumps(manifest_v1(mode)))
        assert record.mode == mode and record.k == 2 and record.weights == WeightsRecord(**WEIGHTS)
        assert isinstance(getattr(record, key), ProbeRecord) and getattr(record, other) is None
        assert record.timings_s["featurize"] == 10.0 and isinstance(record.timings_s["featurize"], float)
        doc = json.loads(record.to_json())
        assert doc["schema_version"] == ManifestRecord.SCHEMA_VERSION == 4
        assert record.engine == EngineRecord(name="tensorflow", version="")  # before engines: TensorFlow
        assert key in doc and other not in doc
        assert ManifestRecord.from_json(record.to_json()) == record


def test_manifest_v2_loads_without_a_store_and_v3_keeps_its_store() -> None:
    v2 = {**manifest_v1(), "schema_version": 2}
    record = ManifestRecord.from_json(json.dumps(v2))
    assert (record.images_reused, record.features_store, record.store_run_id) == (0, None, None)
    assert record.images_featurized == record.images_reused + record.images_inferred
    stored = {
        **manifest_v1(),
        "schema_version": 3,
        "images_reused": 400,
        "images_inferred": 40,
        "features_store": "s3://b/features/mobilenet_v2_avg-tensorflow-224px-abababababababab",
        "store_run_id": "20261201T201500Z-fit-3fa2c1",
    }
    record = ManifestRecord.from_json(json.dumps(stored))
    assert (record.images_reused, record.images_inferred) == (400, 40)
    assert ManifestRecord.from_json(record.to_json()) == record
    with pytest.raises(RecordError, match="has no key 'images_reused'"):
        ManifestRecord.from_json(json.dumps({k: v for k, v in stored.items() if k != "images_reused"}))


def test_featurizer_v1_loads_and_is_written_as_the_current_version() -> None:
    record = FeaturizerRecord.from_json(json.dumps(featurizer_v1()))
    assert record.network == "MobileNetV2(include_top=False, pooling='avg')"
    assert record.architecture is None  # not recorded before version 3
    assert record.classifier is None  # fitted before the app's model existed
    doc = json.loads(record.to_json())
    assert doc["schema_version"] == FeaturizerRecord.SCHEMA_VERSION == 5
    assert record.engine == EngineRecord(name="tensorflow", version="")  # before engines: TensorFlow
    assert record.spark is None and doc["spark"] is None  # not recorded before version 5
    assert "network" in doc and "model" not in doc
    assert FeaturizerRecord.from_json(record.to_json()) == record


CLASSIFIER = {
    "file": "classifier.tflite",
    "labels_file": "labels.txt",
    "sha256": "ab" * 32,
    "bytes": 9_000_000,
    "precision": "float32",
    "signature": "serving_default",
    "tensors": [
        {"role": "input", "key": "images", "name": "serving_default_images:0", "shape": [-1, 224, 224, 3]},
        {"role": "output 0", "key": "pca", "name": "StatefulPartitionedCall:0", "shape": [-1, 2]},
    ],
    "labels": ["Apple", "Banana"],
    "preprocessing": {"color": "RGB"},
}


def test_featurizer_v4_keeps_its_classifier_and_v3_has_none() -> None:
    v2 = {**_drop(featurizer_v1(), "model"), "network": "MobileNetV2", "schema_version": 2}
    v3 = {**v2, "schema_version": 3, "architecture": "x86_64"}
    v4 = {
        **v3,
        "schema_version": 4,
        "engine": {"name": "litert", "version": "2.3.0"},
        "classifier": CLASSIFIER,
    }
    record = FeaturizerRecord.from_json(json.dumps(v4))
    assert record.classifier is not None and record.classifier.labels == ["Apple", "Banana"]
    assert record.classifier.tensors[1].shape == [-1, 2]
    assert FeaturizerRecord.from_json(record.to_json()) == record
    assert FeaturizerRecord.from_json(json.dumps(v3)).classifier is None


def test_a_classifier_of_the_wrong_shape_is_refused_naming_the_key() -> None:
    bad = {**CLASSIFIER, "tensors": [{**CLASSIFIER["tensors"][0], "shape": "224"}]}
    with pytest.raises(RecordError, match=r"f.json.classifier.tensors\[0\].shape must be a list"):
        FeaturizerRecord.from_json(json.dumps({**featurizer_v1(), "classifier": bad}), "f.json")


def test_featurizer_v2_loads_without_an_architecture_and_v3_keeps_it() -> None:
    v1 = featurizer_v1()
    v2 = {**{k: v for k, v in v1.items() if k != "model"}, "network": v1["model"], "schema_version": 2}
    assert FeaturizerRecord.from_json(json.dumps(v2)).architecture is None
    v3 = {**v2, "schema_version": 3, "architecture": "aarch64"}
    assert FeaturizerRecord.from_json(json.dumps(v3)).architecture == "aarch64"
    with pytest.raises(RecordError, match="architecture"):
        FeaturizerRecord.from_json(json.dumps({k: v for k, v in v3.items() if k != "architecture"}), "f.json")


def test_transform_warns_when_the_architecture_differs(caplog: pytest.LogCaptureFixture) -> None:
    from spark_job.driver.job import warn_on_architecture_change

    with caplog.at_level("WARNING", logger="spark_job.driver.job"):
        assert warn_on_architecture_change("x86_64", "x86_64") is False
        assert warn_on_architecture_change(None, "aarch64") is False  # an older model: nothing to compare
        assert not caplog.records
        assert warn_on_architecture_change("x86_64", "aarch64") is True
    (warning,) = caplog.records
    assert "fitted on x86_64 and transform runs on aarch64" in warning.getMessage()


def test_featurizer_v5_keeps_its_spark_and_v4_has_none() -> None:
    v4 = {**featurizer_v1(), "network": "n", "schema_version": 4, "architecture": "x86_64"}
    v4 |= {"engine": {"name": "litert", "version": "2.3.0"}}
    assert FeaturizerRecord.from_json(json.dumps(v4)).spark is None  # fitted before the line was recorded
    v5 = {**v4, "schema_version": 5, "spark": "4.1.1-amzn-0"}
    record = FeaturizerRecord.from_json(json.dumps(v5))
    assert record.spark == "4.1.1-amzn-0"
    assert FeaturizerRecord.from_json(record.to_json()) == record
    with pytest.raises(RecordError, match="has no key 'spark'"):
        FeaturizerRecord.from_json(json.dumps(_drop(v5, "spark")), "f.json")


@pytest.mark.parametrize(
    ("version", "line"),
    [
        ("3.5.9", "3.5"),
        ("3.5.6-amzn-2", "3.5"),
        ("4.1.1", "4.1"),
        ("4.1.1-amzn-0", "4.1"),
        ("4.10.1", "4.10"),
    ],
)
def test_spark_line_is_major_and_minor(version: str, line: str) -> None:
    assert spark_line(version) == line


@pytest.mark.parametrize("version", [None, "", "4", "spark-4.1.1", "4.1"])
def test_spark_line_of_no_version_is_none(version: str | None) -> None:
    assert spark_line(version) is None


def test_transform_warns_when_the_spark_line_differs(caplog: pytest.LogCaptureFixture) -> None:
    from spark_job.driver.job import warn_on_spark_line_change

    with caplog.at_level("WARNING", logger="spark_job.driver.job"):
        assert warn_on_spark_line_change("3.5.6-amzn-2", "3.5.9") is False  # EMR's build and pip's: one line
        assert warn_on_spark_line_change("4.1.1-amzn-0", "4.1.1") is False
        assert warn_on_spark_line_change(None, "4.1.1") is False  # an older model: nothing to compare
        assert not caplog.records
        assert warn_on_spark_line_change("3.5.9", "4.1.1-amzn-0") is True
    (warning,) = caplog.records
    assert "fitted on Spark 3.5.9 and transform runs on Spark 4.1.1-amzn-0" in warning.getMessage()


def test_featurizer_v4_keeps_its_engine_and_refuses_an_unknown_one() -> None:
    litert = {"name": "litert", "version": "2.3.0", "model_file": "m.tflite", "model_sha256": "cd" * 32}
    doc = {**featurizer_v1(), "network": "n", "schema_version": 4, "architecture": "x86_64", "engine": litert}
    assert FeaturizerRecord.from_json(json.dumps(doc)).engine.name == "litert"
    with pytest.raises(RecordError, match=r"engine.name must be one of 'litert', 'tensorflow'"):
        FeaturizerRecord.from_json(json.dumps({**doc, "engine": {**litert, "name": "onnx"}}))
    with pytest.raises(RecordError, match="has no key 'engine'"):
        FeaturizerRecord.from_json(json.dumps({k: v for k, v in doc.items() if k != "engine"}))


@pytest.mark.parametrize("record", [ManifestRecord, FeaturizerRecord])
def test_a_newer_version_is_refused_naming_it(record: Any) -> None:
    doc = manifest_v1() if record is ManifestRecord else featurizer_v1()
    version = record.SCHEMA_VERSION
    with pytest.raises(
        RecordError, match=rf"x.json has schema_version 7; this job reads .* up to version {version}"
    ):
        record.from_json(json.dumps({**doc, "schema_version": 7}), "x.json")


def _drop(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "m.json is not valid JSON"),
        (b"\xff\xfe\x00garbage", "m.json is not valid JSON"),
        ("[1, 2]", "m.json must hold a JSON object, got list"),
        (json.dumps(_drop(manifest_v1(), "k")), "m.json has no key 'k'"),
        (json.dumps({**manifest_v1(), "k": "111"}), "m.json.k must be int, got str"),
        (json.dumps({**manifest_v1(), "k": True}), "m.json.k must be int, got bool"),
        (json.dumps({**manifest_v1(), "mode": "predict"}), "m.json.mode must be one of 'fit', 'transform'"),
        (json.dumps({**manifest_v1(), "classes": "Banana"}), "m.json.classes must be a list, got str"),
        (json.dumps({**manifest_v1(), "classes": ["Banana", 3]}), r"m.json.classes\[1\] must be str"),
        (json.dumps({**manifest_v1(), "weights": {"source": "x"}}), "m.json.weights has no key 'sha256'"),
        (json.dumps({**manifest_v1(), "timings_s": {"list": "slow"}}), "m.json.timings_s.list must be float"),
        (json.dumps({**manifest_v1(), "schema_version": "2"}), "schema_version must be an integer >= 1"),
        (json.dumps({**manifest_v1(), "schema_version": 0}), "schema_version must be an integer >= 1"),
    ],
)
def test_malformed_manifest_is_an_input_error(text: str | bytes, message: str) -> None:
    with pytest.raises(JobInputError, match=message):
        ManifestRecord.from_json(text, "m.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": None}, "f.json.image_size must be int, got NoneType"),
        ({"image_size": 100}, "image_size 100 is not one of 96, 128, 160, 192, 224"),
        ({"feature_dim": 1024}, "feature_dim 1024, this job makes 1280"),
        ({"k": 0}, r"k 0 is not in \[1, 1280\]"),
        ({"spectrum": None}, "f.json.spectrum must be a list, got NoneType"),
        ({"weights": "imagenet"}, "f.json.weights must be an object, got str"),
    ],
)
def test_malformed_featurizer_is_an_input_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        FeaturizerRecord.from_json(json.dumps({**featurizer_v1(), **change}), "f.json")


def test_featurizer_without_image_size_is_an_input_error() -> None:
    # Once a KeyError outside load_model's try: exit 1 and a traceback instead of exit 2.
    with pytest.raises(JobInputError, match="has no key 'image_size'"):
        FeaturizerRecord.from_json(json.dumps(_drop(featurizer_v1(), "image_size")))


def test_read_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"cannot read .*absent\.json"):
        ManifestRecord.read(tmp_path / "absent.json")
    path = tmp_path / "manifest.json"
    path.write_text("")
    with pytest.raises(RecordError, match=f"{path} is not valid JSON"):
        ManifestRecord.read(path)
