"""Standardization + PCA: fitted as Spark ML models (saved and loaded as such), with the covariance and the
projection computed by NumPy in the Python workers (pure DataFrame -> DataFrame / model functions)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import PCAModel, StandardScaler, StandardScalerModel
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import DenseMatrix, DenseVector
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from spark_job.shims import pyspark_private
from spark_job.workers.linear_algebra import MOMENTS_DDL, Moments, partition_moments, projection

log = logging.getLogger(__name__)

VECTOR_COL = "features_vec"
SCALED_COL = "scaled"
PCA_COL = "pca_vec"
# pca/: the projection's output.
PCA_SCHEMA = StructType(
    [
        StructField("path", StringType(), False),
        StructField("label", StringType(), True),
        StructField("pca", ArrayType(FloatType(), containsNull=False), False),
    ]
)


@dataclass(frozen=True)
class PcaFit:
    reducer: PipelineModel  # StandardScaler + PCA
    explained_variance: list[float]  # per component, k of them (fraction of total variance)
    full_spectrum: list[float]  # all components, for the report's curve


def to_vectors(features: DataFrame) -> DataFrame:
    return features.withColumn(VECTOR_COL, array_to_vector(F.col("features")))


def choose_k(explained_variance: np.ndarray, target: float) -> int:
    """Smallest k whose cumulative explained variance reaches `target`."""
    cumulative = np.cumsum(explained_variance)
    # Float round-off can leave the total a hair under 1.0.
    k = int(np.searchsorted(cumulative, target - 1e-9) + 1)
    return min(k, len(explained_variance))


def feature_moments(features: DataFrame) -> Moments:
    """The features' Moments, in float64: each Python worker folds its rows into one, and Spark merges them
    in a tree (the driver receives a few 1280 x 1280 matrices, however many photos)."""
    spark = features.sparkSession
    tasks = 2 * spark.sparkContext.defaultParallelism  # one partial result each, merged in a tree
    partial = features.select("features").coalesce(tasks).mapInArrow(partition_moments, MOMENTS_DDL)
    return partial.rdd.map(Moments.from_row).treeReduce(Moments.merge, depth=2)


def fit_pca(features: DataFrame, variance: float | None, components: int | None) -> PcaFit:
    """Spark ML's StandardScaler(mean, std), then PCA; k from `components`, else the least for `variance`.

    The standardized covariance is the features' (feature_moments) divided by std_i std_j, 0 where a std is
    0; NumPy's eigh of it on the driver becomes a Spark ML PCAModel. Not PCA.fit: docs/decisions.md.
    """
    scaler = StandardScaler(inputCol=VECTOR_COL, outputCol=SCALED_COL, withMean=True, withStd=True)
    scaler_model = scaler.fit(to_vectors(features).select(VECTOR_COL))
    moments = feature_moments(features)
    scale = inverse_std(scaler_model.std.toArray())
    covariance = moments.m2 / max(moments.n - 1, 1) * np.outer(scale, scale)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)  # round-off makes the null space slightly < 0
    eigenvectors = eigenvectors[:, order]
    spectrum = eigenvalues / eigenvalues.sum()
    k = components if components is not None else choose_k(spectrum, float(variance or 1.0))
    pca_model = pca_model_from(features.sparkSession, eigenvectors[:, :k], spectrum[:k])
    reducer = PipelineModel(stages=[scaler_model, pca_model])
    explained = [float(v) for v in spectrum[:k]]
    log.info("PCA: k=%d keeps %.4f of the variance", k, float(np.sum(explained)))
    return PcaFit(reducer=reducer, explained_variance=explained, full_spectrum=[float(v) for v in spectrum])


def inverse_std(std: np.ndarray) -> np.ndarray:
    """1 / std, 0 where std is 0: StandardScalerModel's scale."""
    return np.divide(1.0, std, out=np.zeros_like(std), where=std != 0.0)


def pca_model_from(spark: SparkSession, components: np.ndarray, explained: np.ndarray) -> PCAModel:
    """A Spark ML PCAModel (transform, save, load as usual) from principal components (n x k)."""
    n, k = components.shape
    matrix = DenseMatrix(n, k, components.flatten(order="F").tolist())
    model = pyspark_private.pca_model(spark, matrix, DenseVector(explained.tolist()), k)
    return model.setInputCol(SCALED_COL).setOutputCol(PCA_COL)


def project(reducer: PipelineModel, features: DataFrame) -> DataFrame:
    """path, label, features -> path, label, pca (array<float> of k): reducer.transform's values (to
    float32's precision), computed by NumPy in the workers."""
    scaler = reducer.stages[0]
    assert isinstance(scaler, StandardScalerModel)
    std = scaler.std.toArray()
    mean = scaler.mean.toArray() if scaler.getWithMean() else np.zeros_like(std)
    scale = inverse_std(std) if scaler.getWithStd() else np.ones_like(std)
    components = pca_stage(reducer).pc.toArray()
    function = projection(mean, scale, components)
    return features.select("path", "label", "features").mapInArrow(function, PCA_SCHEMA)


def pca_stage(reducer: PipelineModel) -> PCAModel:
    stage = reducer.stages[-1]
    if not isinstance(stage, PCAModel):
        raise TypeError(f"last pipeline stage is {type(stage).__name__}, expected PCAModel")
    return stage
