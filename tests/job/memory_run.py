"""`python -m tests.job.memory_run INPUT OUTPUT STORE WARM_UP`: the featurize stage with a features store,
twice (the first run infers every image, the second reuses them all) after a run on the few photos of
WARM_UP, in a session of its own whose driver may
receive at most 4 MB of task results per action, with Python's allocations traced on the driver. Prints
one JSON line: each run's counts and the traced peak of the driver's Python heap during it, in bytes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import tracemalloc

from pyspark.sql import SparkSession

from spark_job.contract.records import EngineRecord
from spark_job.driver.plan import RunPlan
from spark_job.driver.storage import normalize
from spark_job.driver.store import new_run_id
from spark_job.driver.store_stage import store_featurize_stage
from spark_job.driver.timings import Timings
from spark_job.driver.weights import ResolvedWeights
from tests.job.fake_engine import ByteCountEngineSpec

# The ceiling: what the driver may receive from one action's tasks. The job's results are counts, a few
# names and at most 200 rejects, and each task's own report (its metrics: ~11 KB, hence fewer shuffle
# partitions than Spark's 200 here); a list of every stored identity of 50,000 photos is ~5 MB.
MAX_RESULT_SIZE = "4m"


def main(input_dir: str, output: str, store: str, warm_up: str) -> int:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.maxResultSize", MAX_RESULT_SIZE)
        .config("spark.sql.shuffle.partitions", "20")
        # A join side Spark estimates under 10 MB is collected on the driver and broadcast: bounded whatever
        # the number of photos (a cached listing's estimate is its compressed size: up to ~5x that, decoded),
        # but off here so that the ceiling above measures what the job itself brings back.
        .config("spark.sql.autoBroadcastJoinThreshold", "-1")
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    runs = []
    with tempfile.NamedTemporaryFile(suffix=".weights") as weights:
        # A run on a few photos first: the modules a run imports on the driver are in the trace otherwise.
        for name, folder in (("warm-up", warm_up), ("first", input_dir), ("second", input_dir)):
            plan = RunPlan(
                mode="fit",
                input=folder,
                output=normalize(f"{output}/{name}"),
                overwrite=False,
                image_size=8,
                weights=ResolvedWeights(source="fake", local_path=weights.name, sha256="cd" * 32),
                engine_threads=1,
                batch_size=64,
                engine=ByteCountEngineSpec(),
                engine_record=EngineRecord(name="fake", version="test"),
                engine_files=(),
            )
            tracemalloc.start()
            store_of_run = f"{store}-warm-up" if name == "warm-up" else store
            result, _ = store_featurize_stage(spark, plan, store_of_run, new_run_id("fit"), Timings())
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            if name == "warm-up":
                result.inputs.release()
                continue
            runs.append(
                {
                    "images": result.inputs.n_images,
                    "features": result.n_features,
                    "inferred": result.n_inferred,
                    "reused": result.n_reused,
                    "python_heap_peak": peak,
                }
            )
            result.inputs.release()
    spark.stop()
    sys.stdout.write(json.dumps(runs) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
