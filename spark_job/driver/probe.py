"""Quality check of the features: a logistic-regression probe on the PCA output (Spark ML).

`fit` trains it on its labelled input and saves it with the model; `transform` on labelled input evaluates
it. A linear probe that separates the classes well shows the features (and the PCA) kept what matters.
"""

from __future__ import annotations

import logging

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import StringIndexer
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_job.contract.records import ProbeRecord

log = logging.getLogger(__name__)

PROBE_FEATURES = "pca_vec"
LABEL_INDEX = "label_index"
MAX_ITER = 300
# L-BFGS stops when the loss moves by less than this (relative): Spark's default 1e-6 takes 2-3x the
# iterations for the same accuracy (docs/decisions.md).
TOLERANCE = 1e-4
# At most this many photos of each class (a seeded stratified sample): the probe's cost is bounded by the
# number of classes, however many photos each has, at the same accuracy (docs/decisions.md).
ROWS_PER_CLASS = 1000
SAMPLE_SEED = 7


def labelled(pca: DataFrame) -> DataFrame:
    """path, label, pca (array<float>) -> labelled rows with a vector column."""
    return pca.where(F.col("label").isNotNull()).withColumn(PROBE_FEATURES, array_to_vector(F.col("pca")))


def training_rows(pca: DataFrame, per_class: int = ROWS_PER_CLASS) -> DataFrame | None:
    """The labelled rows the probe learns from: every row of a class with at most `per_class` of them, else
    a sample of about `per_class` (Bernoulli, seeded); None when there are fewer than two classes."""
    counts = pca.where(F.col("label").isNotNull()).groupBy("label").count().collect()  # one row per class
    if len(counts) < 2:
        return None
    fractions = {row["label"]: min(1.0, per_class / row["count"]) for row in counts}
    if all(fraction == 1.0 for fraction in fractions.values()):
        return pca.where(F.col("label").isNotNull())
    return pca.sampleBy("label", fractions, seed=SAMPLE_SEED)


def fit_probe(pca: DataFrame) -> PipelineModel | None:
    """Train on the labelled rows (training_rows); None when there are fewer than two classes."""
    sample = training_rows(pca)
    if sample is None:
        log.info("probe: fewer than two labelled classes, not trained")
        return None
    rows = labelled(sample).cache()
    # L2 strength 1/n is scikit-learn's default (C=1) in Spark's per-sample loss scaling. No feature
    # standardization: it would blow the low-variance (noisy) components up to the weight of PC1.
    reg_param = 1.0 / rows.count()
    pipeline = Pipeline(
        stages=[
            # handleInvalid="keep": a class unseen at fit time gets its own index and counts as an error.
            StringIndexer(
                inputCol="label", outputCol=LABEL_INDEX, handleInvalid="keep", stringOrderType="alphabetAsc"
            ),
            LogisticRegression(
                featuresCol=PROBE_FEATURES,
                labelCol=LABEL_INDEX,
                regParam=reg_param,
                standardization=False,
                maxIter=MAX_ITER,
                tol=TOLERANCE,
                family="multinomial",
            ),
        ]
    )
    try:
        return pipeline.fit(rows)
    finally:
        rows.unpersist()


def evaluate_probe(probe: PipelineModel, pca: DataFrame) -> ProbeRecord | None:
    """accuracy, weighted F1 and per-class recall on the labelled rows (None if there are none)."""
    rows = labelled(pca)
    if rows.limit(1).count() == 0:
        return None
    predictions = probe.transform(rows).select("label", LABEL_INDEX, "prediction").cache()
    try:
        evaluator = MulticlassClassificationEvaluator(labelCol=LABEL_INDEX, predictionCol="prediction")
        accuracy = evaluator.evaluate(predictions, {evaluator.metricName: "accuracy"})
        weighted_f1 = evaluator.evaluate(predictions, {evaluator.metricName: "f1"})
        per_class = (
            predictions.groupBy("label")
            .agg(
                F.avg((F.col("prediction") == F.col(LABEL_INDEX)).cast("double")).alias("recall"),
                F.count("*").alias("n"),
            )
            .orderBy("label")
            .collect()
        )
        n = predictions.count()
    finally:
        predictions.unpersist()
    result = ProbeRecord(
        images=n,
        accuracy=round(accuracy, 6),
        weighted_f1=round(weighted_f1, 6),
        per_class_recall={r["label"]: round(r["recall"], 6) for r in per_class},
    )
    log.info("probe: accuracy %.4f, weighted F1 %.4f on %d labelled images", accuracy, weighted_f1, n)
    return result
