"""The PCA's covariance from the workers' moments equals Spark's RowMatrix's, and the projection in the
workers equals Spark ML's transform; the moments merge exactly; the local heap rule."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml.feature import StandardScaler
from pyspark.mllib.linalg.distributed import RowMatrix
from pyspark.mllib.util import MLUtils
from pyspark.sql import SparkSession

from spark_job.driver.reduce import feature_moments, fit_pca, project, to_vectors
from spark_job.driver.session import local_driver_memory
from spark_job.workers.linear_algebra import Moments

DIM = 64


def features_frame(spark: SparkSession, rows: int, partitions: int):  # type: ignore[no-untyped-def]
    """Non-negative features with a large mean against their spread (as MobileNetV2's pooled activations),
    one constant column, in `partitions` partitions."""
    rng = np.random.default_rng(11)
    x = rng.gamma(2.0, 0.5, (rows, DIM)) + 3.0
    x[:, 7] = 0.5
    data = [(f"p{i}", f"c{i % 3}", [float(v) for v in x[i].astype(np.float32)]) for i in range(rows)]
    return spark.createDataFrame(data, "path string, label string, features array<float>").repartition(
        partitions
    )


def test_moments_merge_to_the_whole_datasets() -> None:
    x = np.random.default_rng(3).normal(5.0, 2.0, (1000, 8))
    merged = Moments.of(x[:1]).merge(Moments.of(x[1:400])).merge(Moments.of(x[400:]))
    whole = Moments.of(x)
    assert merged.n == 1000
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-10)
    assert Moments.from_row(merged.to_row()).m2.tobytes() == merged.m2.tobytes()


@pytest.mark.slow
def test_covariance_equals_rowmatrix_to_1e_9(spark: SparkSession) -> None:
    """What fit_pca decomposes (the standardized covariance) against Spark's own RowMatrix over the
    scaler's output, the way the job computed it before: equal to 1e-9 relative."""
    features = features_frame(spark, rows=3000, partitions=7)
    scaler = StandardScaler(inputCol="features_vec", outputCol="scaled", withMean=True, withStd=True)
    model = scaler.fit(to_vectors(features))
    scaled = MLUtils.convertVectorColumnsFromML(
        model.transform(to_vectors(features)).select("scaled"), "scaled"
    )
    expected = RowMatrix(scaled.rdd.map(lambda row: row[0])).computeCovariance().toArray()

    moments = feature_moments(features)
    std = model.std.toArray()
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std != 0)
    covariance = moments.m2 / (moments.n - 1) * np.outer(scale, scale)
    assert moments.n == 3000
    np.testing.assert_allclose(covariance, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_the_workers_projection_equals_spark_mls_transform(spark: SparkSession) -> None:
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    features = features_frame(spark, rows=500, partitions=3)
    fit = fit_pca(features, variance=None, components=5)
    ours = {r["path"]: np.asarray(r["pca"]) for r in project(fit.reducer, features).collect()}
    theirs = fit.reducer.transform(to_vectors(features)).select(
        "path", vector_to_array(F.col("pca_vec")).alias("v")
    )
    for row in theirs.collect():
        np.testing.assert_allclose(ours[row["path"]], row["v"], rtol=1e-5, atol=1e-5)
    assert len(ours) == 500


@pytest.mark.parametrize(("gib", "expected"), [(2, "1024m"), (8, "2048m"), (24, "6144m"), (64, "8192m")])
def test_a_local_run_gets_a_quarter_of_the_machine_between_1_and_8_gib(gib: int, expected: str) -> None:
    assert local_driver_memory(gib << 30) == expected
