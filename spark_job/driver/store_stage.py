"""The featurize stage with a features store: infer only the listed images the store does not hold,
append them, then write features/ for exactly the listed images, from the store (store_assembly).

    store_lookup    which listed images the store holds (one scan of its identity columns)
    store_infer     infer the new ones and append them to the store, committed per task
    store_assemble  features/ and rejects/ from the store
"""

from __future__ import annotations

import logging

from pyspark.accumulators import Accumulator
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_job.contract.errors import JobFailedError
from spark_job.driver.featurize import (
    FeaturizeResult,
    featurize,
    finish_stage,
    is_image,
    start_stage,
    with_label,
)
from spark_job.driver.listing import Inputs, listing_of
from spark_job.driver.plan import RunPlan
from spark_job.driver.storage import Storage
from spark_job.driver.store import FeaturesStore, StoreRun, escape_glob, featurizer_key
from spark_job.driver.store_assembly import assemble_features, holdings, listed_identities
from spark_job.driver.timings import Timings
from spark_job.workers.featurize_map import RejectsParam

log = logging.getLogger(__name__)


def store_featurize_stage(
    spark: SparkSession, plan: RunPlan, store_uri: str, run_id: str, timings: Timings
) -> tuple[FeaturizeResult, StoreRun]:
    """The featurize stage with a store: infer only the listed images whose identity is not in the store,
    append them, then write features/ for exactly the listed images, from the store. The outputs of
    featurize_stage (features/: path, label, features, here with the identity's length and
    modification_time too; rejects/)."""
    storage = Storage(spark)
    store = FeaturesStore(spark, storage, store_uri, featurizer_key(plan))
    # The workers start while the driver lists and looks up the store (start_stage).
    inputs = start_stage(spark, storage, plan, timings)
    with timings.stage("featurize"):
        result = _featurize_with_store(spark, plan, inputs, store, run_id, timings)
    return result, StoreRun(uri=store.dir, key=store.key, run_id=run_id)


def _featurize_with_store(
    spark: SparkSession,
    plan: RunPlan,
    inputs: Inputs,
    store: FeaturesStore,
    run_id: str,
    timings: Timings,
) -> FeaturizeResult:
    """Within the featurize stage: store_lookup (which images are new), store_infer (infer and append
    them), store_assemble (features/ and rejects/ from the store)."""
    sc = spark.sparkContext
    with timings.stage("store_lookup"):
        if not store.storage.is_dir(store.dir):  # a new featurizer key: every image is new
            listed: dict[str, tuple[int, int]] = {}
            new_paths, reused = list(inputs.image_paths), 0
        else:
            listed = listed_identities(inputs)
            known = {path for path, _, _ in holdings(store.rows(), inputs, listed).files}
            new_paths = [path for path in inputs.image_paths if path not in known]
            reused = len(known)
    log.info(
        "features store %s: %d of %d listed images known, %d to infer",
        store.dir,
        reused,
        inputs.images,
        len(new_paths),
    )
    inferred = sc.accumulator(0)
    rejected = sc.accumulator([], RejectsParam())
    with timings.stage("store_infer"):
        _infer_new(spark, plan, inputs, store, run_id, new_paths, inferred, rejected)
    with timings.stage("store_assemble"):
        n_features = assemble_features(spark, plan, inputs, store, listed or listed_identities(inputs))
    check_assembled(n_features, reused, int(inferred.value))
    return finish_stage(spark, store.storage, plan, inputs, n_features, inferred, rejected, reused)


def check_assembled(n_features: int, reused: int, inferred: int) -> None:
    """features/ holds every image the lookup found and every one this run appended, unless a photo was
    replaced while the run read it (then rejects/ lists it). None of this run's own rows found means the
    store's identities and the listing's disagree: fail rather than lose them all."""
    missing = reused + inferred - n_features
    if inferred and missing >= inferred:
        raise JobFailedError(
            f"none of the {inferred} images this run appended to the features store matched the input's "
            "listing (path, length, modification time): does this storage report other modification "
            "times in listings than in file statuses?"
        )
    if missing > 0:
        log.warning("%d images inferred or reused are not in features/: replaced during the run?", missing)


def _infer_new(
    spark: SparkSession,
    plan: RunPlan,
    inputs: Inputs,
    store: FeaturesStore,
    run_id: str,
    new_paths: list[str],
    inferred: Accumulator,
    rejected: Accumulator,
) -> None:
    if not new_paths:
        return
    # Only the new files' bytes are read: all of the input's when all are new, else the new paths.
    if len(new_paths) == len(inputs.image_paths):
        files = inputs.files
    else:
        with listing_of(spark, new_paths):  # the load lists at once
            files = spark.read.format("binaryFile").load([escape_glob(p) for p in new_paths])
    images = with_label(
        files.where(is_image(F.col("path"))).select("path", "length", "modificationTime", "content"),
        inputs.qualified,
    )
    rows = featurize(images, plan.engine, plan.batch_size, inferred, rejected)
    accepted = rows.where(F.col("error").isNull()).select(
        "path", "length", F.col("modificationTime").alias("modification_time"), "label", "features"
    )
    store.append(accepted, run_id)  # the featurize function's only action
