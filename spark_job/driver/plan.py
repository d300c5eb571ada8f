"""The run plan: what the stages of a run need, resolved once from the configuration (fit takes the image
size and weights from the command line, transform from the model folder; the stages read the plan only).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from spark_job.contract.errors import JobInputError
from spark_job.contract.names import EngineName
from spark_job.contract.records import EngineRecord
from spark_job.driver import litert_convert as litert
from spark_job.driver.config import JobConfig, Mode
from spark_job.driver.listing import require_input_folder
from spark_job.driver.storage import Storage, normalize
from spark_job.driver.timings import Timings
from spark_job.driver.weights import ResolvedWeights, resolve_weights, sha256_file
from spark_job.workers.engines import EngineSpec, LiteRTEngineSpec, TensorFlowEngineSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    mode: Mode
    input: str  # as given: messages and the manifest name it so
    output: str  # normalized: an absolute local path or a URI
    overwrite: bool
    image_size: int
    weights: ResolvedWeights
    engine_threads: int
    batch_size: int
    engine: EngineSpec  # what the featurize stage's workers build
    engine_record: EngineRecord  # the engine, its version and model, for the manifest and featurizer.json
    engine_files: tuple[str, ...]  # local files the workers' engine reads, shipped with addFile


def engine_threads(spark: SparkSession, requested: int | None) -> int:
    """Threads of each Python worker's engine: `requested` (--engine-threads), else spark.task.cpus, the
    cores Spark gives a task, so N tasks on N cores never oversubscribe them. Nothing else sets them (no
    environment variable; the cluster's settings size spark.task.cpus, stacks/spark_settings.py)."""
    if requested is not None:
        return requested
    return int(spark.conf.get("spark.task.cpus", "1") or "1")


def resolve_plan(
    spark: SparkSession,
    storage: Storage,
    cfg: JobConfig,
    *,
    image_size: int,
    weights_source: str,
    workdir: str,
    timings: Timings,
    engine: EngineName,
) -> RunPlan:
    """The plan of `cfg`'s run. Checks the input folder first (the weights may need a download); on litert,
    converts the weights to a .tflite model (cached; "convert" in the timings)."""
    require_input_folder(storage, cfg.input)
    with timings.stage("weights"):
        weights = resolve_weights(weights_source, image_size, storage, workdir, check=engine != "litert")
    threads = engine_threads(spark, cfg.engine_threads)
    spec: EngineSpec
    if engine == "litert":
        cache = conversion_cache(workdir)
        with timings.stage("convert"):
            converted = litert.convert(weights.local_path, image_size, cache, weights_sha256=weights.sha256)
        shipped = shipped_model(converted.path, converted.sha256, cache)
        spec = LiteRTEngineSpec(Path(shipped).name, image_size, threads)
        record = EngineRecord(
            name="litert",
            version=litert.litert_version(),
            model_file=converted.file_name,
            model_sha256=converted.sha256,
            converted_by_tensorflow=converted.tensorflow,
        )
        files: tuple[str, ...] = (shipped,)
    else:
        spec = TensorFlowEngineSpec(weights.file_name, image_size, threads)
        record = EngineRecord(name="tensorflow", version=litert.tensorflow_version())
        files = (weights.local_path,)
    return RunPlan(
        mode=cfg.mode,
        input=cfg.input,
        output=normalize(cfg.output),
        overwrite=cfg.overwrite,
        image_size=image_size,
        weights=weights,
        engine_threads=threads,
        batch_size=cfg.batch_size,
        engine=spec,
        engine_record=record,
        engine_files=files,
    )


def conversion_cache(workdir: str) -> str:
    """Where converted models (and their shipped copies) are kept across runs: litert_convert's default
    cache, else a private folder of this user's under the system's temporary folder (a YARN driver may have
    no usable home), else this run's scratch folder. A folder that stays put matters: a SparkContext refuses
    a second addFile of a file name from another path, and serves a file it was given for its whole life."""
    cache = Path(litert.default_cache_dir())
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK):
            return str(cache)
    except OSError:
        pass
    private = Path(tempfile.gettempdir()) / f"fruits-pipeline-{os.getuid()}"
    log.info("conversion cache %s is not writable: trying %s", cache, private)
    try:
        private.mkdir(mode=0o700, exist_ok=True)
        if _owned_privately(private):
            return str(private)
        log.warning("%s is not a private folder of this user's: not used as a cache", private)
    except OSError:
        pass
    log.info("converting into this run's scratch folder")
    return workdir


def _owned_privately(folder: Path) -> bool:
    """A real folder (not a symlink) of this user's that nobody else can write to: in a shared temporary
    folder, another user could otherwise make it first and leave a model of theirs in it."""
    info = folder.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def shipped_model(model_path: str, sha256: str, folder: str) -> str:
    """A copy of the converted model named by its content, for addFile: two conversions of the same weights
    need not be byte-identical, and a second addFile of a name with other bytes fails every later task of
    the session. Written under a temporary name and renamed: a cut copy never stands under the final name."""
    target = Path(folder) / f"{Path(model_path).stem}_{sha256[:16]}.tflite"
    if target.is_file() and sha256_file(target) == sha256:
        return str(target)
    if target.exists():
        log.warning("shipped copy %s does not match its name's sha256: copying it again", target)
    litert.write_atomically(target, Path(model_path).read_bytes())
    return str(target)


def refuse_existing_output(storage: Storage, plan: RunPlan) -> None:
    """Refuse an output folder that holds something, unless --overwrite (checked before any job starts)."""
    if not plan.overwrite and not storage.is_empty_or_missing(plan.output):
        raise JobInputError(
            f"output {plan.output} already exists and is not empty; use a new --output or --overwrite"
        )


def prepare_output(storage: Storage, plan: RunPlan) -> None:
    """Refuse an output folder that holds something, unless --overwrite (then empty it)."""
    refuse_existing_output(storage, plan)  # checks the folder only without --overwrite
    if plan.overwrite and not storage.is_empty_or_missing(plan.output):
        log.info("removing previous output %s (--overwrite)", plan.output)
        storage.delete(plan.output)
