"""The job's featurize stage through its real code path, in a fresh Spark local[N] session.

Same functions as `python -m spark_job`: spark_session, resolve_weights, then featurize_input (build the
model in the workers while listing, read bytes, decode, resize, infer, write Parquet), timed from the
start of featurize_input to its return (features/ and rejects/ written and counted). Prints one JSON
line like bench.bare_tf.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from spark_job.cli import spark_session
from spark_job.config import JobConfig
from spark_job.job import Timings, featurize_input
from spark_job.model import resolve_weights
from spark_job.names import ALLOWED_IMAGE_SIZES, DEFAULT_IMAGE_SIZE
from spark_job.storage import Storage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spark_featurize")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, choices=ALLOWED_IMAGE_SIZES)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

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
            weights = resolve_weights(args.weights, args.image_size, storage, tmp)
            start = time.perf_counter()
            stage = featurize_input(spark, cfg, weights, args.image_size, cfg.output, Timings())
            done = stage.featurized
            seconds = time.perf_counter() - start
        finally:
            spark.stop()
    sys.stdout.write(json.dumps({"images": done, "seconds": seconds, "img_s": done / seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
