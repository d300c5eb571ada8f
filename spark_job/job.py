"""Orchestration of a run: validate, list, featurize once, reduce, write outputs, then the manifest.

I/O lives here; the transformations are the pure functions of featurize.py and reduce.py. The manifest is
written last: a folder without manifest.json is not a finished result.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_job import featurize as fz
from spark_job import probe as pb
from spark_job import reduce as rd
from spark_job import report as rp
from spark_job.config import FEATURE_DIM, JobConfig
from spark_job.errors import JobFailedError, JobInputError
from spark_job.model import ResolvedWeights, resolve_weights, temp_workdir
from spark_job.storage import Storage, join, normalize

log = logging.getLogger(__name__)

FEATURIZER_FILE = "featurizer.json"
PIPELINE_DIR = "pipeline"
PROBE_DIR = "probe"
STAGING_DIR = "staging-featurized"


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        log.info("stage %s: started", name)
        try:
            yield
        finally:
            self.stages[name] = round(time.perf_counter() - start, 3)
            log.info("stage %s: done in %.1f s", name, self.stages[name])


@dataclass(frozen=True)
class Inputs:
    uri: str
    qualified: str
    files: DataFrame  # binaryFile over the input: listed once, reused by the featurize stage
    images: int  # every JPEG/PNG found, empty ones included
    empty_images: list[str]  # images of 0 bytes: Spark never hands them to the UDF
    skipped: list[str]  # non-image files, counted apart


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions(spark: SparkSession) -> dict[str, str]:
    import tensorflow as tf

    return {"python": platform.python_version(), "spark": spark.version, "tensorflow": tf.__version__}


def prepare_output(storage: Storage, output: str, overwrite: bool) -> None:
    if storage.is_empty_or_missing(output):
        return
    if not overwrite:
        raise JobInputError(
            f"output {output} already exists and is not empty; use a new --output or --overwrite"
        )
    log.info("removing previous output %s (--overwrite)", output)
    storage.delete(output)


def _uri_to_path(uri: object) -> str:
    """inputFiles() gives URIs (file:///a%20b); binaryFile's path column gives Hadoop paths (file:/a b)."""
    text = unquote(str(uri))
    return "file:/" + text.removeprefix("file:///") if text.startswith("file:///") else text


def discover(spark: SparkSession, storage: Storage, input_uri: str) -> Inputs:
    """List the input once (no contents read); fail clearly when there is nothing to work on."""
    uri = normalize(input_uri)
    if not storage.exists(uri):
        raise JobInputError(f"input not found: {input_uri}")
    if not storage.is_dir(uri):
        raise JobInputError(f"input must be a folder (or prefix) of images: {input_uri}")
    qualified = storage.qualified(uri)
    files = fz.binary_files(spark, uri)
    listing = files.select("path", fz.is_image(F.col("path")).alias("is_image"))
    summary = listing.agg(
        F.count_if("is_image").alias("images"),
        F.sort_array(F.collect_list(F.when(~F.col("is_image"), F.col("path")))).alias("skipped"),
    ).first()  # one pass over the file index, no contents read
    images, skipped = int(summary["images"]), list(summary["skipped"])
    # The file index also lists empty files, which the scan above never returns. Comparing counts costs
    # one call; only when they differ are the names fetched (element by element through py4j).
    listed = files._jdf.inputFiles()
    empty: list[str] = []
    if len(listed) != images + len(skipped):
        seen = {row["path"] for row in listing.select("path").collect()}
        empty_files = sorted(p for p in map(_uri_to_path, listed) if p not in seen)
        empty = [p for p in empty_files if fz.IMAGE_PATTERN.search(p.lower())]
        skipped = sorted(skipped + [p for p in empty_files if p not in empty])
        images += len(empty)
    log.info(
        "listed %s: %d image files (%d empty), %d other files skipped",
        input_uri,
        images,
        len(empty),
        len(skipped),
    )
    if not images:
        raise JobInputError(f"no JPEG or PNG images under {input_uri} ({len(skipped)} other files)")
    return Inputs(
        uri=uri, qualified=qualified, files=files, images=images, empty_images=empty, skipped=skipped
    )


def featurize_to(
    spark: SparkSession,
    cfg: JobConfig,
    inputs: Inputs,
    weights: ResolvedWeights,
    image_size: int,
    output: str,
) -> tuple[DataFrame, DataFrame, int]:
    """Run inference once, write features/ and rejects/, return them read back from Parquet."""
    spark.sparkContext.addFile(weights.local_path)
    inferred = spark.sparkContext.accumulator(0)
    tf_threads = cfg.tf_threads or fz.default_tf_threads(spark)
    images = fz.images_of(inputs.files, inputs.qualified)
    featurized = fz.featurize(images, weights.file_name, image_size, cfg.batch_size, tf_threads, inferred)
    staging = join(output, STAGING_DIR)
    # The UDF's only action: everything downstream reads these Parquet files.
    featurized.write.mode("overwrite").parquet(staging)
    staged = spark.read.parquet(staging)
    fz.accepted(staged).write.mode("overwrite").parquet(join(output, "features"))
    empty = spark.createDataFrame(
        [(p, fz.EMPTY_FILE_REASON) for p in inputs.empty_images], "path string, reason string"
    )
    fz.rejected(staged).unionByName(empty).write.mode("overwrite").parquet(join(output, "rejects"))
    Storage(spark).delete(staging)
    return (
        spark.read.parquet(join(output, "features")),
        spark.read.parquet(join(output, "rejects")),
        int(inferred.value),
    )


def write_model(
    storage: Storage,
    model: PipelineModel,
    probe: PipelineModel | None,
    model_dir: str,
    featurizer: dict[str, Any],
) -> None:
    model.write().overwrite().save(join(model_dir, PIPELINE_DIR))
    if probe is not None:
        probe.write().overwrite().save(join(model_dir, PROBE_DIR))
    storage.write_text(join(model_dir, FEATURIZER_FILE), json.dumps(featurizer, indent=2, sort_keys=True))


def load_probe(storage: Storage, model_dir: str) -> PipelineModel | None:
    uri = join(normalize(model_dir), PROBE_DIR)
    return PipelineModel.load(uri) if storage.exists(join(uri, "metadata")) else None


def load_model(spark: SparkSession, storage: Storage, model_dir: str) -> tuple[PipelineModel, dict[str, Any]]:
    uri = normalize(model_dir)
    meta = join(uri, FEATURIZER_FILE)
    if not storage.exists(meta) or not storage.exists(join(uri, PIPELINE_DIR, "metadata")):
        raise JobInputError(
            f"{model_dir} is not a model folder "
            f"(expected {FEATURIZER_FILE} and {PIPELINE_DIR}/ written by `fit`)"
        )
    try:
        featurizer = json.loads(storage.read_text(meta))
        model = PipelineModel.load(join(uri, PIPELINE_DIR))
        rd.pca_stage(model)
    except Exception as exc:  # corrupt JSON, unreadable Spark ML metadata, wrong stages
        raise JobInputError(f"{model_dir} is not a readable model: {exc}") from exc
    return model, featurizer


def write_run_report(
    spark: SparkSession,
    storage: Storage,
    output: str,
    manifest: dict[str, Any],
    spectrum: list[float],
    pca: DataFrame,
    rejects: DataFrame,
    workdir: str,
) -> None:
    total = manifest["images_featurized"]
    points = pca.select(F.col("pca")[0].alias("pc1"), F.col("pca")[1].alias("pc2"), "label")
    if total > rp.SCATTER_MAX_POINTS:
        points = points.sample(fraction=rp.SCATTER_MAX_POINTS / total, seed=7)
    reject_rows = [(r["path"], r["reason"]) for r in rejects.orderBy("path").limit(1000).collect()]
    local = Path(workdir) / "report"
    for file in rp.write_report(local, manifest, spectrum, points.toPandas(), reject_rows):
        storage.upload(str(file), join(output, "report", file.name))


def run(spark: SparkSession, cfg: JobConfig) -> dict[str, Any]:
    """Run `fit` or `transform`; return the manifest (also written to <output>/manifest.json)."""
    started_at = utc_now()
    timings = Timings()
    storage = Storage(spark)
    output = normalize(cfg.output)
    workdir = temp_workdir()
    try:
        # Everything that can be wrong with the user's arguments is checked before anything is written.
        model: PipelineModel | None = None
        featurizer: dict[str, Any] = {}
        if cfg.mode == "transform":
            model, featurizer = load_model(spark, storage, cfg.model or "")
            image_size = int(featurizer["image_size"])
            weights_source = cfg.weights or featurizer["weights"]["source"]
        else:
            image_size = cfg.image_size
            weights_source = cfg.weights or "imagenet"
        with timings.stage("list"):
            inputs = discover(spark, storage, cfg.input)
        with timings.stage("weights"):
            weights = resolve_weights(weights_source, image_size, storage, workdir)
        if featurizer and weights.sha256 != featurizer["weights"]["sha256"]:
            raise JobInputError(
                f"weights {weights_source} (sha256 {weights.sha256[:12]}...) differ from the model's "
                f"({featurizer['weights']['source']}, sha256 {featurizer['weights']['sha256'][:12]}...)"
            )
        prepare_output(storage, output, cfg.overwrite)

        with timings.stage("featurize"):
            features, rejects, inferred = featurize_to(spark, cfg, inputs, weights, image_size, output)
            featurized = features.count()
            rejected = rejects.count()
        log.info("featurized %d of %d images, rejected %d", featurized, inputs.images, rejected)
        if featurized == 0:
            raise JobFailedError(
                f"none of the {inputs.images} images under {cfg.input} could be decoded; "
                f"reasons are in {join(output, 'rejects')}"
            )

        probe: PipelineModel | None = None
        if cfg.mode == "fit":
            with timings.stage("fit_pca"):
                fit = rd.fit_pca(features, cfg.variance, cfg.components)
            model, spectrum = fit.model, fit.full_spectrum
            explained, variance_target = fit.explained_variance, cfg.variance
        else:
            assert model is not None
            explained = [float(v) for v in rd.pca_stage(model).explainedVariance.toArray()]
            spectrum, variance_target = featurizer["spectrum"], featurizer.get("variance_target")
            probe = load_probe(storage, cfg.model or "")

        with timings.stage("project"):
            rd.project(model, features).write.mode("overwrite").parquet(join(output, "pca"))
            pca = spark.read.parquet(join(output, "pca"))

        with timings.stage("probe"):
            if cfg.mode == "fit":
                probe = pb.fit_probe(pca)
            evaluation = pb.evaluate_probe(probe, pca) if probe is not None else None

        if cfg.mode == "fit":
            featurizer = {
                "image_size": image_size,
                "weights": weights.as_dict(),
                "feature_dim": FEATURE_DIM,
                "k": len(explained),
                "variance_target": variance_target,
                "spectrum": spectrum,
                "model": "MobileNetV2(include_top=False, pooling='avg')",
            }
            with timings.stage("write_model"):
                write_model(storage, model, probe, join(output, "model"), featurizer)

        classes = sorted(
            r["label"] for r in features.select("label").distinct().collect() if r["label"] is not None
        )
        manifest: dict[str, Any] = {
            "mode": cfg.mode,
            "input": cfg.input,
            "output": cfg.output,
            "model": join(output, "model") if cfg.mode == "fit" else cfg.model,
            "images_discovered": inputs.images,
            "images_featurized": featurized,
            "images_rejected": rejected,
            "images_inferred": inferred,
            "images_skipped": len(inputs.skipped),
            "skipped_files": inputs.skipped[:100],
            "classes": classes,
            "image_size": image_size,
            "weights": weights.as_dict(),
            "k": len(explained),
            "variance_target": variance_target,
            "components_requested": cfg.components,
            "explained_variance": explained,
            "cumulative_variance_at_k": float(sum(explained)),
            # fit: accuracy on its own training images; transform: on held-out labelled images.
            ("probe_train" if cfg.mode == "fit" else "probe"): evaluation,
            "timings_s": timings.stages,
            "throughput_img_s": round(featurized / timings.stages["featurize"], 2),
            "versions": versions(spark),
            "spark_master": spark.sparkContext.master,
            "default_parallelism": spark.sparkContext.defaultParallelism,
            "report": join(output, "report"),
            "started_at": started_at,
        }
        with timings.stage("report"):
            manifest["finished_at"] = utc_now()
            write_run_report(spark, storage, output, manifest, spectrum, pca, rejects, workdir)
        storage.write_text(join(output, "manifest.json"), json.dumps(manifest, indent=2))
        log.info("wrote %s", join(output, "manifest.json"))
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
