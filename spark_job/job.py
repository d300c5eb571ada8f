"""Orchestration of a run: validate, list, featurize once, reduce, write outputs, then the manifest.

I/O lives here; the transformations are the pure functions of featurize.py and reduce.py. The manifest is
written last: a folder without manifest.json is not a finished result.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import threading
import time
import uuid
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
    image_paths: list[str]  # every JPEG/PNG found, empty ones included, as binaryFile's path column
    skipped: list[str]  # non-image files, counted apart

    @property
    def images(self) -> int:
        return len(self.image_paths)


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


def _uri_to_path(uri: str) -> str:
    """inputFiles() gives URIs (file:///a%20b); binaryFile's path column gives Hadoop paths (file:/a b)."""
    text = unquote(uri)
    return "file:/" + text.removeprefix("file:///") if text.startswith("file:///") else text


def listed_paths(files: DataFrame) -> list[str]:
    """Every file in the DataFrame's file index (empty files included), spelled as in its path column."""
    jvm = files.sparkSession.sparkContext._jvm
    # One py4j call for the whole listing: iterating the Java array would cost a round trip per file
    # (~1 s per 10,000 files). Hadoop's join takes String[] as such; py4j matches no Object[] overload.
    joined = str(jvm.org.apache.hadoop.util.StringUtils.join("\n", files._jdf.inputFiles()))
    return [_uri_to_path(uri) for uri in joined.split("\n")] if joined else []


def require_input_folder(storage: Storage, input_uri: str) -> str:
    uri = normalize(input_uri)
    if not storage.exists(uri):
        raise JobInputError(f"input not found: {input_uri}")
    if not storage.is_dir(uri):
        raise JobInputError(f"input must be a folder (or prefix) of images: {input_uri}")
    return uri


def discover(spark: SparkSession, storage: Storage, input_uri: str) -> Inputs:
    """List the input once, on the driver (no Spark job, no contents read); fail when there is no image."""
    uri = require_input_folder(storage, input_uri)
    files = fz.binary_files(spark, uri)
    listed = listed_paths(files)
    image_paths, skipped = [], []
    for path in sorted(listed):
        (image_paths if fz.IMAGE_PATTERN.search(path.lower()) else skipped).append(path)
    log.info("listed %s: %d image files, %d other files skipped", input_uri, len(image_paths), len(skipped))
    if not image_paths:
        raise JobInputError(f"no JPEG or PNG images under {input_uri} ({len(skipped)} other files)")
    return Inputs(
        uri=uri, qualified=storage.qualified(uri), files=files, image_paths=image_paths, skipped=skipped
    )


class WorkerWarmUp:
    """warm_up_workers in a background thread: the model gets built in the workers while the driver lists.

    Its Spark job runs in its own job group, so a run that fails meanwhile (bad input) cancels it.
    """

    def __init__(self, spark: SparkSession, weights_file_name: str, image_size: int, tf_threads: int) -> None:
        from pyspark import InheritableThread

        self._spark = spark
        self._group = f"fruits-warm-up-{uuid.uuid4().hex[:8]}"
        self._args = (weights_file_name, image_size, tf_threads)
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self.workers = 0
        self.seconds = 0.0
        self._thread = InheritableThread(target=self._run, name="warm-up-workers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.perf_counter()
        self._spark.sparkContext.setJobGroup(self._group, "build the model in the Python workers", True)
        try:
            if not self._cancelled.is_set():
                self.workers = fz.warm_up_workers(self._spark, *self._args)
        except BaseException as exc:  # reported by wait(); featurize builds the model on demand anyway
            self._error = exc
        self.seconds = round(time.perf_counter() - start, 3)

    def cancel(self) -> None:
        """Stop the warm-up, also when its job gets submitted while this runs (cancelling is not sticky)."""
        self._cancelled.set()
        while self._thread.is_alive():
            self._spark.sparkContext.cancelJobGroup(self._group)
            self._thread.join(timeout=0.2)

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            log.warning(
                "warming up the Python workers failed (featurize tasks built the model themselves): %s",
                str(self._error).splitlines()[0] if str(self._error) else type(self._error).__name__,
            )
        else:
            log.info("model built ahead in %d Python worker(s) in %.1f s", self.workers, self.seconds)


def reject_rows(
    storage: Storage, image_paths: list[str], features: DataFrame, featurized: int, reasons: dict[str, str]
) -> list[tuple[str, str]]:
    """Every listed image without a row in features/ (`featurized` rows), with a reason: the decoder's when
    the UDF rejected it, else why Spark's file source never read it (it skips empty files)."""
    if featurized + len(reasons) == len(image_paths) and reasons.keys() <= set(image_paths):
        return sorted(reasons.items())  # the counts add up: no path needs fetching
    seen = {row["path"] for row in features.select("path").collect()}
    return [(p, reasons.get(p) or fz.unread_reason(storage.length(p))) for p in image_paths if p not in seen]


@dataclass(frozen=True)
class Featurized:
    inputs: Inputs
    features: DataFrame  # <output>/features read back
    rejects: DataFrame  # <output>/rejects read back
    featurized: int  # rows in features/
    rejected: int  # rows in rejects/
    inferred: int  # inferences the UDF ran (accumulator): equals `featurized`, each image inferred once


def featurize_to(
    spark: SparkSession,
    cfg: JobConfig,
    inputs: Inputs,
    weights: ResolvedWeights,
    image_size: int,
    tf_threads: int,
    output: str,
) -> Featurized:
    """Run inference once, write features/ and rejects/, return them read back from Parquet."""
    sc = spark.sparkContext
    inferred = sc.accumulator(0)
    rejected = sc.accumulator([], fz.RejectsParam())
    images = fz.images_of(inputs.files, inputs.qualified)
    featurized = fz.featurize(
        images, weights.file_name, image_size, cfg.batch_size, tf_threads, inferred, rejected
    )
    # The UDF's only action. Accepted images go straight to features/; the rejected ones' paths and reasons
    # come back in the accumulator, which Spark updates once per successful task of an action.
    fz.accepted(featurized).write.mode("overwrite").parquet(join(output, "features"))
    features = spark.read.parquet(join(output, "features"))
    n_features = features.count()  # a Parquet count reads only the footers
    rejects = reject_rows(Storage(spark), inputs.image_paths, features, n_features, dict(rejected.value))
    rejects_df = spark.createDataFrame(rejects, "path string, reason string")
    rejects_df.coalesce(1).write.mode("overwrite").parquet(join(output, "rejects"))
    return Featurized(
        inputs=inputs,
        features=features,
        rejects=spark.read.parquet(join(output, "rejects")),
        featurized=n_features,
        rejected=len(rejects),
        inferred=int(inferred.value),
    )


def featurize_input(
    spark: SparkSession,
    cfg: JobConfig,
    weights: ResolvedWeights,
    image_size: int,
    output: str,
    timings: Timings,
) -> Featurized:
    """The featurize stage as `run` and the benchmark run it: build the model in the Python workers while
    the driver lists the input, check the output folder, then featurize once to features/ and rejects/."""
    storage = Storage(spark)
    spark.sparkContext.addFile(weights.local_path)
    tf_threads = cfg.tf_threads or fz.default_tf_threads(spark)
    warm_up = WorkerWarmUp(spark, weights.file_name, image_size, tf_threads)
    try:
        with timings.stage("list"):
            inputs = discover(spark, storage, cfg.input)
        prepare_output(storage, output, cfg.overwrite)
        with timings.stage("featurize"):
            # Submitted without waiting for the warm-up: its tasks queue behind the warm-up's (FIFO).
            result = featurize_to(spark, cfg, inputs, weights, image_size, tf_threads, output)
    except BaseException:
        warm_up.cancel()
        raise
    warm_up.wait()
    timings.stages["warm_up_workers"] = warm_up.seconds  # overlaps "list"
    return result


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
        require_input_folder(storage, cfg.input)  # before the weights: a download can take a while
        with timings.stage("weights"):
            weights = resolve_weights(weights_source, image_size, storage, workdir)
        if featurizer and weights.sha256 != featurizer["weights"]["sha256"]:
            raise JobInputError(
                f"weights {weights_source} (sha256 {weights.sha256[:12]}...) differ from the model's "
                f"({featurizer['weights']['source']}, sha256 {featurizer['weights']['sha256'][:12]}...)"
            )
        stage = featurize_input(spark, cfg, weights, image_size, output, timings)
        inputs, features, rejects, inferred = stage.inputs, stage.features, stage.rejects, stage.inferred
        featurized, rejected = stage.featurized, stage.rejected
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
