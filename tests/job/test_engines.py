"""Both engines through the job's featurize function in real Spark workers: golden against bare Keras
(one image per class, 1e-4), and LiteRT workers that never import TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import SparkSession

from spark_job.driver import litert_convert as litert
from spark_job.driver.featurize import featurize
from spark_job.driver.plan import shipped_model
from spark_job.workers.decode import decode_image
from spark_job.workers.engines import EngineSpec, LiteRTEngineSpec, TensorFlowEngineSpec
from spark_job.workers.network import build_network, preprocess


def one_image_per_class(sample_dir: Path) -> list[Path]:
    return [sorted(d.iterdir())[0] for d in sorted((sample_dir / "Training").iterdir()) if d.is_dir()]


def engine_spec(spark: SparkSession, name: str, weights_path: Path, tmp_path: Path) -> EngineSpec:
    """The spec resolve_plan makes for `name`, with its file shipped."""
    if name == "litert":
        converted = litert.convert(str(weights_path), 224, litert.default_cache_dir())
        shipped = shipped_model(converted.path, converted.sha256, str(tmp_path))
        spark.sparkContext.addFile(shipped)
        return LiteRTEngineSpec(Path(shipped).name, 224, threads=1)
    spark.sparkContext.addFile(str(weights_path))
    return TensorFlowEngineSpec(weights_path.name, 224, threads=1)


@pytest.mark.parametrize("engine", ["litert", "tensorflow"])
def test_features_equal_bare_keras_one_image_per_class(
    spark: SparkSession,
    engine: str,
    sample_dir: Path,
    weights_path: Path,
    tmp_path: Path,
    fresh_worker_pool: None,
) -> None:
    files = one_image_per_class(sample_dir)
    images = spark.createDataFrame(
        [(f"file:{p}", p.parent.name) for p in files], "path string, label string"
    ).repartition(2)
    rows = featurize(images, engine_spec(spark, engine, weights_path, tmp_path), batch_size=4).collect()
    got = {r["path"].removeprefix("file:"): np.asarray(r["features"], np.float32) for r in rows}
    assert sorted(got) == sorted(map(str, files))

    network = build_network(str(weights_path), 224)
    expected = network.predict(
        preprocess(np.stack([decode_image(p.read_bytes(), 224) for p in files])), verbose=0
    )
    np.testing.assert_allclose(np.stack([got[str(p)] for p in files]), expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.1  # real activations, not zeros
    assert len(files) == 12


def test_litert_workers_never_import_tensorflow(
    spark: SparkSession, sample_dir: Path, weights_path: Path, tmp_path: Path, fresh_worker_pool: None
) -> None:
    """The job's featurize function on litert, then a probe job (Arrow, like the stage: no pandas of its
    own) in the same (reused) workers: none of them has TensorFlow, Keras or pandas (0.2 s per worker)
    loaded."""
    files = one_image_per_class(sample_dir)
    images = spark.createDataFrame([(f"file:{p}", None) for p in files], "path string, label string")
    featurized = featurize(
        images.repartition(2), engine_spec(spark, "litert", weights_path, tmp_path), batch_size=4
    )
    assert featurized.count() == len(files)

    def loaded(batches):
        import os
        import sys

        import pyarrow as pa

        from spark_job.workers.engines import _ENGINES

        pid, types = os.getpid(), [pa.int64(), pa.int64(), pa.string()]
        for _ in batches:
            heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "jax", "pandas"})
            # No pa.array: its first call imports pandas, and the next task may reuse this worker.
            row = [
                pa.nulls(1, kind).fill_null(value)
                for kind, value in zip(types, [pid, len(_ENGINES), ",".join(heavy)], strict=True)
            ]
            yield pa.RecordBatch.from_arrays(row, names=["pid", "engines", "heavy"])

    probe = spark.range(0, 2, numPartitions=2).mapInArrow(loaded, "pid long, engines long, heavy string")
    workers = probe.collect()
    assert any(w["engines"] == 1 for w in workers)  # the probe ran in a worker that featurized
    assert [w["heavy"] for w in workers] == ["", ""]
