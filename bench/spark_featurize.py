"""The job's featurize stage through its real code path, in a fresh Spark local[N] session.

Same functions as `python -m spark_job`: spark_session, resolve_plan (which converts the model for litert,
or finds it in the cache), then featurize_stage (list, read bytes, decode, resize, infer in the workers,
write Parquet), timed from the start of featurize_stage to its return (features/ and rejects/ written and
counted): each worker's engine start-up is inside the clock. Prints one JSON line like bench.bare_tf.
With --features-store, the store's stage (spark_job.driver.store_stage) runs instead, and the line
also holds its "featurize" stage time and the images inferred and reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from spark_job.contract.names import ALLOWED_IMAGE_SIZES, DEFAULT_ENGINE, DEFAULT_IMAGE_SIZE, ENGINES
from spark_job.driver.config import JobConfig
from spark_job.driver.featurize import featurize_stage
from spark_job.driver.plan import resolve_plan
from spark_job.driver.session import spark_session
from spark_job.driver.storage import Storage
from spark_job.driver.store import new_run_id
from spark_job.driver.store_stage import store_featurize_stage
from spark_job.driver.timings import Timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spark_featurize")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, choices=ALLOWED_IMAGE_SIZES)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--features-store", default=None)
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE)
    args = parser.parse_args(argv)
    extra: dict[str, object] = {}

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        cfg = JobConfig(
            mode="transform",
            input=args.dir,
            output=f"{tmp}/out",
            master=f"local[{args.cores}]",
            image_size=args.image_size,
            batch_size=args.batch_size,
        )
        spark = spark_session(cfg)
        spark.sparkContext.setLogLevel("ERROR")
        storage = Storage(spark)
        try:
            plan = resolve_plan(
                spark,
                storage,
                cfg,
                image_size=args.image_size,
                weights_source=args.weights,
                workdir=tmp,
                timings=Timings(),
                engine=args.engine,
            )
            timings = Timings()
            start = time.perf_counter()
            if args.features_store:
                result, _ = store_featurize_stage(
                    spark, plan, args.features_store, new_run_id("bench"), timings
                )
                extra = {
                    "featurize_s": timings.stages["featurize"],
                    "inferred": result.n_inferred,
                    "reused": result.n_reused,
                    "stages": dict(timings.stages),
                }
            else:
                result = featurize_stage(spark, plan, timings)
            done = result.n_features
            seconds = time.perf_counter() - start
        finally:
            spark.stop()
    line = {"images": done, "seconds": seconds, "img_s": done / seconds, **extra}
    sys.stdout.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
