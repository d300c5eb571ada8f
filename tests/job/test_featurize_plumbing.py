"""The featurize stage end to end with a tiny fake engine (no TensorFlow): listing, labels, decoding,
batches through the engine, features/ and rejects/ written once, counts and reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image
from pyspark.sql import SparkSession

from spark_job.contract.names import FEATURE_DIM
from spark_job.contract.records import EngineRecord
from spark_job.driver.featurize import featurize_stage
from spark_job.driver.plan import RunPlan
from spark_job.driver.storage import normalize
from spark_job.driver.timings import Timings
from spark_job.driver.weights import ResolvedWeights
from spark_job.workers.decode import EMPTY_FILE_REASON
from tests.job.fake_engine import FakeEngineSpec
from tests.job_support import active_jobs

COLOURS = {"Red/a.jpg": (250, 0, 0), "Red/sub/b.png": (240, 10, 10), "Green/c.JPEG": (0, 250, 0)}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for rel, colour in COLOURS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 12), colour).save(root / rel, format="PNG" if rel.endswith("png") else "JPEG")
    (root / "Green" / "empty.jpg").write_bytes(b"")
    (root / "Green" / "bad.png").write_text("not a png")
    (root / "notes.txt").write_text("not a photo")
    return root


def fake_plan(tmp_path: Path, photos: Path, **changes: object) -> RunPlan:
    weights = tmp_path / "fake.weights"
    weights.write_bytes(b"shipped to the workers like real weights")
    plan = RunPlan(
        mode="transform",
        input=str(photos),
        output=normalize(str(tmp_path / "out")),
        overwrite=False,
        image_size=8,
        weights=ResolvedWeights(source="fake", local_path=str(weights), sha256="0" * 64),
        engine_threads=1,
        batch_size=2,
        engine=FakeEngineSpec(image_size=8),
        engine_record=EngineRecord(name="tensorflow", version="fake"),
        engine_files=(str(weights),),
    )
    return RunPlan(**{**plan.__dict__, **changes})  # type: ignore[arg-type]


def _name(path: str) -> str:
    return Path(path.removeprefix("file:")).name


def test_featurize_stage_with_a_fake_engine(spark: SparkSession, photos: Path, tmp_path: Path) -> None:
    timings = Timings()
    result = featurize_stage(spark, fake_plan(tmp_path, photos), timings)

    assert (result.n_features, result.n_inferred, result.n_rejected) == (3, 3, 2)
    assert result.inputs.n_images == 5 and result.inputs.n_skipped == 1
    assert [_name(p) for p in result.inputs.skipped_sample] == ["notes.txt"]
    reasons = {_name(p): reason for p, reason in result.rejects_sample}
    assert reasons["empty.jpg"] == EMPTY_FILE_REASON
    assert reasons["bad.png"].startswith("not a decodable image")

    features = pd.read_parquet(tmp_path / "out" / "features")
    by_name = {_name(p): (label, np.asarray(f)) for p, label, f in features.itertuples(index=False)}
    assert {name: label for name, (label, _) in by_name.items()} == {
        "a.jpg": "Red",
        "b.png": "Red",
        "c.JPEG": "Green",
    }
    for rel, colour in COLOURS.items():
        vector = by_name[Path(rel).name][1]
        assert vector.shape == (FEATURE_DIM,)
        np.testing.assert_allclose(vector[:3], colour, atol=3)  # decoded, resized, through the engine
    rejects = pd.read_parquet(tmp_path / "out" / "rejects")
    assert sorted(zip(rejects.path, rejects.reason, strict=True)) == result.rejects_sample
    assert set(timings.stages) == {"list", "featurize"}


def test_featurize_stage_refuses_an_existing_output(
    spark: SparkSession, photos: Path, tmp_path: Path
) -> None:
    from spark_job.contract.errors import JobInputError

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("an earlier run")
    with pytest.raises(JobInputError, match="already exists and is not empty"):
        featurize_stage(spark, fake_plan(tmp_path, photos), Timings())
    assert (tmp_path / "out" / "keep.txt").read_text() == "an earlier run"
    assert active_jobs(spark) == []


@pytest.mark.parametrize("rows", [0, 1, 17])
def test_features_array_keeps_the_engines_values_without_a_copy(rows: int) -> None:
    """The features column as the workers send it: row i is features[i], bit for bit, no null, and the
    values are the engine's own buffer (no copy per row)."""
    from spark_job.workers.featurize_map import features_array

    features = np.random.default_rng(3).standard_normal((rows, FEATURE_DIM)).astype(np.float32)
    column = features_array(features)
    column.validate(full=True)
    assert column.type == pa.list_(pa.field("element", pa.float32(), nullable=False)) and len(column) == rows
    assert column.null_count == 0 and column.values.null_count == 0
    for i, row in enumerate(column.to_pylist()):
        assert np.array_equal(np.asarray(row, np.float32), features[i])
    if rows:
        assert column.values.buffers()[1].address == features.ctypes.data


def test_features_array_refuses_what_overflows_its_offsets() -> None:
    from spark_job.workers.featurize_map import features_array

    too_many = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (2**21, FEATURE_DIM), (0, 0))
    with pytest.raises(ValueError, match="int32 offsets"):
        features_array(too_many)
