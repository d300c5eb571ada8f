"""Standardization + PCA with Spark ML (pure DataFrame -> DataFrame / model functions)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import PCA, PCAModel, StandardScaler
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_job.config import FEATURE_DIM

log = logging.getLogger(__name__)

VECTOR_COL = "features_vec"
SCALED_COL = "scaled"
PCA_COL = "pca_vec"


@dataclass(frozen=True)
class PcaFit:
    model: PipelineModel
    k: int
    explained_variance: list[float]  # per component, k of them (fraction of total variance)
    full_spectrum: list[float]  # all components, for the report's curve

    @property
    def cumulative_variance(self) -> float:
        return float(np.sum(self.explained_variance))


def to_vectors(features: DataFrame) -> DataFrame:
    return features.withColumn(VECTOR_COL, array_to_vector(F.col("features")))


def choose_k(explained_variance: np.ndarray, target: float) -> int:
    """Smallest k whose cumulative explained variance reaches `target`."""
    cumulative = np.cumsum(explained_variance)
    # Float round-off can leave the total a hair under 1.0.
    k = int(np.searchsorted(cumulative, target - 1e-9) + 1)
    return min(k, len(explained_variance))


def fit_pca(features: DataFrame, variance: float | None, components: int | None) -> PcaFit:
    """StandardScaler(mean, std) then PCA; k from `components`, or the smallest reaching `variance`."""
    vectors = to_vectors(features).select(VECTOR_COL).cache()
    try:
        scaler = StandardScaler(inputCol=VECTOR_COL, outputCol=SCALED_COL, withMean=True, withStd=True)
        scaler_model = scaler.fit(vectors)
        scaled = scaler_model.transform(vectors).select(SCALED_COL).cache()
        # One fit at full rank gives the whole spectrum (covariance + SVD on the driver: 1280x1280).
        full: PCAModel = PCA(k=FEATURE_DIM, inputCol=SCALED_COL, outputCol=PCA_COL).fit(scaled)
        spectrum = full.explainedVariance.toArray()
        k = components if components is not None else choose_k(spectrum, float(variance or 1.0))
        pca_model = PCA(k=k, inputCol=SCALED_COL, outputCol=PCA_COL).fit(scaled)
        scaled.unpersist()
    finally:
        vectors.unpersist()
    model = PipelineModel(stages=[scaler_model, pca_model])
    explained = [float(v) for v in pca_model.explainedVariance.toArray()]
    log.info("PCA: k=%d keeps %.4f of the variance", k, float(np.sum(explained)))
    return PcaFit(model=model, k=k, explained_variance=explained, full_spectrum=[float(v) for v in spectrum])


def project(model: PipelineModel, features: DataFrame) -> DataFrame:
    """path, label, features -> path, label, pca (array<float> of k)."""
    out = model.transform(to_vectors(features))
    return out.select("path", "label", vector_to_array(F.col(PCA_COL), "float32").alias("pca"))


def pca_stage(model: PipelineModel) -> PCAModel:
    stage = model.stages[-1]
    if not isinstance(stage, PCAModel):
        raise TypeError(f"last pipeline stage is {type(stage).__name__}, expected PCAModel")
    return stage
