"""A run's manifest: assembled from what the run did, written last to <output>/manifest.json.

The record itself (its keys, types and version) is spark_job.contract.records.ManifestRecord.
"""

from __future__ import annotations

import logging
import platform
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from spark_job.contract.names import MANIFEST_FILE
from spark_job.contract.records import ManifestRecord, ProbeRecord
from spark_job.driver.featurize import FeaturizeResult
from spark_job.driver.litert_convert import litert_version, tensorflow_version
from spark_job.driver.plan import RunPlan
from spark_job.driver.storage import Storage, join
from spark_job.driver.store import StoreRun

log = logging.getLogger(__name__)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions(spark: SparkSession) -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "spark": spark.version,
        "tensorflow": tensorflow_version(),
        "ai-edge-litert": litert_version(),
    }


def classes_of(result: FeaturizeResult) -> list[str]:
    rows = result.features.select("label").distinct().collect()
    return sorted(r["label"] for r in rows if r["label"] is not None)


def run_manifest(
    spark: SparkSession,
    plan: RunPlan,
    result: FeaturizeResult,
    *,
    output_as_given: str,
    model_dir: str | None,
    explained_variance: list[float],
    variance_target: float | None,
    components_requested: int | None = None,
    probe_train: ProbeRecord | None = None,
    probe: ProbeRecord | None = None,
    timings_s: dict[str, float],
    started_at: str,
    store: StoreRun | None = None,
) -> ManifestRecord:
    """The manifest as of now (finished_at: now); the caller replaces timings_s once the report is written."""
    return ManifestRecord(
        mode=plan.mode,
        input=plan.input,
        output=output_as_given,
        model=model_dir,
        images_discovered=result.inputs.n_images,
        images_featurized=result.n_features,
        images_rejected=result.n_rejected,
        images_inferred=result.n_inferred,
        images_reused=result.n_reused,
        images_skipped=result.inputs.n_skipped,
        skipped_files=result.inputs.skipped_sample,
        classes=classes_of(result),
        image_size=plan.image_size,
        weights=plan.weights.as_record(),
        engine=plan.engine_record,
        engine_threads=plan.engine_threads,
        k=len(explained_variance),
        variance_target=variance_target,
        components_requested=components_requested,
        explained_variance=explained_variance,
        cumulative_variance_at_k=float(sum(explained_variance)),
        probe_train=probe_train,
        probe=probe,
        timings_s=dict(timings_s),
        throughput_img_s=round(result.n_features / timings_s["featurize"], 2),
        versions=versions(spark),
        spark_master=str(spark.sparkContext.master),
        default_parallelism=spark.sparkContext.defaultParallelism,
        report=join(plan.output, "report"),
        started_at=started_at,
        finished_at=utc_now(),
        features_store=store.uri if store else None,
        store_run_id=store.run_id if store else None,
    )


def write_manifest(storage: Storage, plan: RunPlan, manifest: ManifestRecord) -> None:
    path = join(plan.output, MANIFEST_FILE)
    storage.write_text(path, manifest.to_json())
    log.info("wrote %s", path)
