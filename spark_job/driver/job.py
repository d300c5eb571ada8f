"""A run, start to end: `run_fit` and `run_transform`, each a sequence of stages over one run plan.

    plan (plan.py) -> featurize (featurize.py; with --features-store, store_stage.py)
      -> reduce (reduce.py) -> probe (probe.py)
      -> model folder (model_folder.py, fit only; the app's classifier: classifier_export.py)
      -> report (report.py) -> manifest (manifest.py, last)

Everything that can be wrong with the user's arguments is checked before anything is written. The manifest
is written last: a folder without manifest.json is not a finished result.
"""

from __future__ import annotations

import logging
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_job.contract.errors import JobFailedError, JobInputError
from spark_job.contract.names import DEFAULT_ENGINE, FEATURE_DIM
from spark_job.contract.records import FeaturizerRecord, ManifestRecord, ProbeRecord, spark_line
from spark_job.driver.classifier_export import export_to_model_folder
from spark_job.driver.config import JobConfig
from spark_job.driver.featurize import REJECTS_DIR, FeaturizeResult, featurize_stage
from spark_job.driver.manifest import run_manifest, utc_now, write_manifest
from spark_job.driver.model_folder import FittedModel, load_model_folder, write_model_folder
from spark_job.driver.plan import RunPlan, resolve_plan
from spark_job.driver.probe import evaluate_probe, fit_probe
from spark_job.driver.reduce import fit_pca, pca_stage, project
from spark_job.driver.report import SCATTER_MAX_POINTS, write_report
from spark_job.driver.storage import Storage, join
from spark_job.driver.store import StoreRun, check_store_location, new_run_id
from spark_job.driver.store_stage import store_featurize_stage
from spark_job.driver.timings import Timings

log = logging.getLogger(__name__)

NETWORK = "MobileNetV2(include_top=False, pooling='avg')"
MODEL_DIR = "model"
PCA_DIR = "pca"
REPORT_DIR = "report"


@dataclass(frozen=True)
class RunContext:
    """What every run has from its start: the clock, the storage and a local scratch folder."""

    started_at: str
    timings: Timings
    storage: Storage
    workdir: str


@contextmanager
def run_context(spark: SparkSession) -> Iterator[RunContext]:
    workdir = tempfile.mkdtemp(prefix="fruits-job-")
    try:
        yield RunContext(started_at=utc_now(), timings=Timings(), storage=Storage(spark), workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(spark: SparkSession, cfg: JobConfig) -> ManifestRecord:
    """Run `fit` or `transform`; return the manifest (also written to <output>/manifest.json)."""
    return run_fit(spark, cfg) if cfg.mode == "fit" else run_transform(spark, cfg)


def run_fit(spark: SparkSession, cfg: JobConfig) -> ManifestRecord:
    """Featurize the input, fit StandardScaler + PCA and the probe, save them as the model folder."""
    with run_context(spark) as ctx:
        plan = resolve_plan(
            spark,
            ctx.storage,
            cfg,
            image_size=cfg.image_size,
            weights_source=cfg.weights or "imagenet",
            workdir=ctx.workdir,
            timings=ctx.timings,
            engine=cfg.engine or DEFAULT_ENGINE,
        )
        stage, store = _featurize(spark, plan, cfg, ctx.timings)
        with ctx.timings.stage("fit_pca"):
            fit = fit_pca(stage.features, cfg.variance, cfg.components)
        pca = _project(spark, plan, fit.reducer, stage.features, ctx.timings)
        with ctx.timings.stage("probe"):
            probe = fit_probe(pca)
            evaluation = evaluate_probe(probe, pca) if probe is not None else None
        featurizer = FeaturizerRecord(
            image_size=plan.image_size,
            weights=plan.weights.as_record(),
            feature_dim=FEATURE_DIM,
            k=len(fit.explained_variance),
            variance_target=cfg.variance,
            spectrum=fit.full_spectrum,
            network=NETWORK,
            architecture=platform.machine(),
            engine=plan.engine_record,
            spark=spark.version,
        )
        model_dir = join(plan.output, MODEL_DIR)
        with ctx.timings.stage("write_model"):
            write_model_folder(
                ctx.storage,
                model_dir,
                FittedModel(featurizer, fit.reducer, probe),
                export=lambda record: _export_classifier(ctx, plan, model_dir, record),
            )
        manifest = run_manifest(
            spark,
            plan,
            stage,
            output_as_given=cfg.output,
            model_dir=model_dir,
            explained_variance=fit.explained_variance,
            variance_target=cfg.variance,
            components_requested=cfg.components,
            probe_train=evaluation,
            timings_s=ctx.timings.stages,
            started_at=ctx.started_at,
            store=store,
        )
        return _finish(ctx, plan, manifest, fit.full_spectrum, pca, stage)


def warn_on_architecture_change(fitted_on: str | None, here: str) -> bool:
    """Warn (and return True) when transform runs on another architecture than fit did: the features differ
    slightly between x86_64 and aarch64 builds of the engine."""
    if fitted_on is None or fitted_on == here:
        return False
    log.warning(
        "this model was fitted on %s and transform runs on %s: features differ slightly between "
        "architectures; fit and transform on the same one (the cluster's `architecture` key) for comparable "
        "output",
        fitted_on,
        here,
    )
    return True


def warn_on_spark_line_change(fitted_on: str | None, here: str) -> bool:
    """Warn (and return True) when transform runs on another Spark line than fit did: its Spark ML models
    are read across lines (identical on the sample, docs/spark-4.md), never silently."""
    if fitted_on is None or spark_line(fitted_on) == spark_line(here):
        return False
    log.warning(
        "this model was fitted on Spark %s and transform runs on Spark %s: another Spark line (its ML models "
        "are read across lines); fit and transform on one releaseLabel line for comparable output",
        fitted_on,
        here,
    )
    return True


def run_transform(spark: SparkSession, cfg: JobConfig) -> ManifestRecord:
    """Put new images through a saved model folder: the same featurizer, its PCA, its probe."""
    with run_context(spark) as ctx:
        fitted = load_model_folder(ctx.storage, cfg.model or "")
        featurizer = fitted.featurizer
        plan = resolve_plan(
            spark,
            ctx.storage,
            cfg,
            image_size=featurizer.image_size,
            weights_source=cfg.weights or featurizer.weights.source,
            workdir=ctx.workdir,
            timings=ctx.timings,
            engine=cfg.engine or featurizer.engine.name,  # by default, the engine it was fitted with
        )
        if plan.engine_record.name != featurizer.engine.name:
            log.warning(
                "featurizing with %s; the model was fitted on %s features (they agree to ~4e-5)",
                plan.engine_record.name,
                featurizer.engine.name,
            )
        if plan.weights.sha256 != featurizer.weights.sha256:
            raise JobInputError(
                f"weights {plan.weights.source} (sha256 {plan.weights.sha256[:12]}...) differ from the "
                f"model's ({featurizer.weights.source}, sha256 {featurizer.weights.sha256[:12]}...)"
            )
        warn_on_architecture_change(featurizer.architecture, platform.machine())
        warn_on_spark_line_change(featurizer.spark, spark.version)
        stage, store = _featurize(spark, plan, cfg, ctx.timings)
        explained = [float(v) for v in pca_stage(fitted.reducer).explainedVariance.toArray()]
        pca = _project(spark, plan, fitted.reducer, stage.features, ctx.timings)
        with ctx.timings.stage("probe"):
            evaluation: ProbeRecord | None = (
                evaluate_probe(fitted.probe, pca) if fitted.probe is not None else None
            )
        manifest = run_manifest(
            spark,
            plan,
            stage,
            output_as_given=cfg.output,
            model_dir=cfg.model,
            explained_variance=explained,
            variance_target=featurizer.variance_target,
            probe=evaluation,
            timings_s=ctx.timings.stages,
            started_at=ctx.started_at,
            store=store,
        )
        return _finish(ctx, plan, manifest, featurizer.spectrum, pca, stage)


def _export_classifier(
    ctx: RunContext, plan: RunPlan, model_dir: str, featurizer: FeaturizerRecord
) -> FeaturizerRecord:
    """The app's model (classifier.tflite, labels.txt) from the Spark ML models just saved in `model_dir`."""
    with ctx.timings.stage("export_classifier"):
        return export_to_model_folder(
            ctx.storage, model_dir, featurizer, plan.weights.local_path, ctx.workdir
        )


def _featurize(
    spark: SparkSession, plan: RunPlan, cfg: JobConfig, timings: Timings
) -> tuple[FeaturizeResult, StoreRun | None]:
    """The featurize stage; with --features-store, only the images the store does not hold are inferred."""
    store: StoreRun | None = None
    if cfg.features_store is None:
        stage = featurize_stage(spark, plan, timings)
    else:
        uri = check_store_location(cfg.features_store, input_uri=plan.input, output=plan.output)
        stage, store = store_featurize_stage(spark, plan, uri, new_run_id(plan.mode), timings)
    log.info(
        "featurized %d of %d images (%d inferred, %d from the features store), rejected %d",
        stage.n_features,
        stage.inputs.n_images,
        stage.n_inferred,
        stage.n_reused,
        stage.n_rejected,
    )
    if stage.n_features == 0:
        stage.inputs.release()
        raise JobFailedError(
            f"none of the {stage.inputs.n_images} images under {plan.input} could be decoded; "
            f"reasons are in {join(plan.output, REJECTS_DIR)}"
        )
    return stage, store


def _project(
    spark: SparkSession, plan: RunPlan, reducer: PipelineModel, features: DataFrame, timings: Timings
) -> DataFrame:
    """<output>/pca, read back: path, label, pca."""
    with timings.stage("project"):
        project(reducer, features).write.mode("overwrite").parquet(join(plan.output, PCA_DIR))
        return spark.read.parquet(join(plan.output, PCA_DIR))


def _finish(
    ctx: RunContext,
    plan: RunPlan,
    manifest: ManifestRecord,
    spectrum: list[float],
    pca: DataFrame,
    stage: FeaturizeResult,
) -> ManifestRecord:
    """The report, then the manifest with the report's time in it, last."""
    with ctx.timings.stage("report"):
        total = manifest.images_featurized
        points = pca.select(F.col("pca")[0].alias("pc1"), F.col("pca")[1].alias("pc2"), "label")
        if total > SCATTER_MAX_POINTS:
            points = points.sample(fraction=SCATTER_MAX_POINTS / total, seed=7)
        local = Path(ctx.workdir) / REPORT_DIR
        for file in write_report(local, manifest, spectrum, points.toPandas(), stage.rejects_sample):
            ctx.storage.upload(str(file), join(plan.output, REPORT_DIR, file.name))
    manifest = replace(manifest, timings_s=dict(ctx.timings.stages))
    write_manifest(ctx.storage, plan, manifest)
    stage.inputs.release()
    return manifest
