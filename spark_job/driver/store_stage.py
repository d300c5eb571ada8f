"""The featurize stage with a features store: infer only the listed images the store does not hold, append
them, then write features/ for exactly the listed images, from the store.

    store_lookup    which listed images the store holds: a join of the listing with the store's identity
                    columns (no features read)
    store_infer     read, infer and append the new ones, committed per task
    store_assemble  features/ from the store (one row per listed image: whole store files copied, the
                    rest joined; spark_job.driver.store_assembly), then rejects/

Every step is a DataFrame operation on the executors: the driver holds counts only.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_job.contract.errors import JobFailedError
from spark_job.driver.featurize import (
    FeaturizeResult,
    featurize,
    finish_stage,
    in_tasks,
    range_sampling,
    start_stage,
)
from spark_job.driver.listing import Inputs
from spark_job.driver.plan import RunPlan
from spark_job.driver.session import sql_conf
from spark_job.driver.storage import Storage
from spark_job.driver.store import FeaturesStore, StoreRun, featurizer_key, same_file
from spark_job.driver.store_assembly import assemble_features
from spark_job.driver.timings import Timings

log = logging.getLogger(__name__)

ROWS_PER_JOIN_PARTITION = 25_000


def store_featurize_stage(
    spark: SparkSession, plan: RunPlan, store_uri: str, run_id: str, timings: Timings
) -> tuple[FeaturizeResult, StoreRun]:
    """The featurize stage with a store: its outputs are featurize_stage's (features/, here with the
    identity's length and modification_time too; rejects/)."""
    storage = Storage(spark)
    store = FeaturesStore(spark, storage, store_uri, featurizer_key(plan))
    inputs = start_stage(spark, storage, plan, timings)
    with timings.stage("featurize"):
        result = _featurize_with_store(spark, plan, inputs, store, run_id, timings)
    return result, StoreRun(uri=store.dir, key=store.key, run_id=run_id)


def _featurize_with_store(
    spark: SparkSession, plan: RunPlan, inputs: Inputs, store: FeaturesStore, run_id: str, timings: Timings
) -> FeaturizeResult:
    listed = inputs.images.select("path", "length", "modification_ms", "label")
    with timings.stage("store_lookup"):
        stored = store.rows()
        new = listed.join(stored, same_file(listed, stored), "left_anti").persist(
            StorageLevel.MEMORY_AND_DISK
        )
        n_new = new.count()
    reused = inputs.n_images - n_new
    log.info(
        "features store %s: %d of %d listed images known, %d to infer",
        store.dir,
        reused,
        inputs.n_images,
        n_new,
    )
    inferred = spark.sparkContext.accumulator(0)
    with timings.stage("store_infer"):
        if n_new:
            images = in_tasks(new, n_new)
            rows = featurize(images, plan.engine, plan.batch_size, inferred)
            with range_sampling(spark, n_new):
                store.append(
                    rows.withColumn("modification_time", F.timestamp_millis("modification_ms")), run_id
                )
        new.unpersist()
    with timings.stage("store_assemble"):
        # The store as it is now (this run's appends, and any other run's since the lookup, are in it),
        # joined in partitions of ~25,000 photos' features (~125 MB; Spark's default is 200 partitions,
        # which adaptive execution merges when they are small).
        partitions = max(
            spark.sparkContext.defaultParallelism, inputs.n_images // ROWS_PER_JOIN_PARTITION, 200
        )
        with sql_conf(spark, "spark.sql.shuffle.partitions", str(partitions)):
            n_features = assemble_features(spark, store.rows(), listed, plan.output)
        check_assembled(n_features, reused, int(inferred.value))
        return finish_stage(spark, plan, inputs, n_features, inferred, reused)


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
