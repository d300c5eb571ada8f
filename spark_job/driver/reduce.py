"""Standardization + PCA with Spark ML (pure DataFrame -> DataFrame / model functions)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import PCAModel, StandardScaler
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import DenseMatrix, DenseVector
from pyspark.mllib.linalg.distributed import RowMatrix
from pyspark.mllib.util import MLUtils
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_job.shims import pyspark_private

log = logging.getLogger(__name__)

VECTOR_COL = "features_vec"
SCALED_COL = "scaled"
PCA_COL = "pca_vec"


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


def fit_pca(features: DataFrame, variance: float | None, components: int | None) -> PcaFit:
    """StandardScaler(mean, std) then PCA; k from `components`, or the smallest reaching `variance`.

    The covariance of the standardized features is computed by Spark (RowMatrix, distributed); its
    eigen-decomposition (1280 x 1280) is done with NumPy on the driver and becomes a Spark ML PCAModel.
    Why not PCA.fit: with no native LAPACK (as on this machine; EMR nodes not checked) Spark's PCA falls
    back to the pure-Java dgesdd, which here returned a wrong spectrum in about one fit out of four on the
    same covariance (a flat spectrum: k = 191 instead of 111 for 95%, and a chance-level probe), while the
    covariance itself matched NumPy to 1e-13 every time.
    """
    vectors = to_vectors(features).select(VECTOR_COL).cache()
    try:
        scaler = StandardScaler(inputCol=VECTOR_COL, outputCol=SCALED_COL, withMean=True, withStd=True)
        scaler_model = scaler.fit(vectors)
        scaled = scaler_model.transform(vectors).select(SCALED_COL)
        # Stays in the JVM: the DataFrame of (old-API) vectors goes straight to RowMatrix.
        rows = MLUtils.convertVectorColumnsFromML(scaled, SCALED_COL)
        covariance = RowMatrix(rows).computeCovariance().toArray()
    finally:
        vectors.unpersist()
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


def pca_model_from(spark: SparkSession, components: np.ndarray, explained: np.ndarray) -> PCAModel:
    """A Spark ML PCAModel (transform, save, load as usual) from principal components (n x k)."""
    n, k = components.shape
    matrix = DenseMatrix(n, k, components.flatten(order="F").tolist())
    model = pyspark_private.pca_model(spark, matrix, DenseVector(explained.tolist()), k)
    return model.setInputCol(SCALED_COL).setOutputCol(PCA_COL)


def project(reducer: PipelineModel, features: DataFrame) -> DataFrame:
    """path, label, features -> path, label, pca (array<float> of k)."""
    out = reducer.transform(to_vectors(features))
    return out.select("path", "label", vector_to_array(F.col(PCA_COL), "float32").alias("pca"))


def pca_stage(reducer: PipelineModel) -> PCAModel:
    stage = reducer.stages[-1]
    if not isinstance(stage, PCAModel):
        raise TypeError(f"last pipeline stage is {type(stage).__name__}, expected PCAModel")
    return stage
