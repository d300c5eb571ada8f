"""`python -m tests.job.memory_run INPUT OUTPUT STORE`: the featurize stage with a features store, twice
(the first run infers every image, the second reuses them all), in a session of its own whose driver may
receive at most 2 MB of task results per action, with Python's allocations traced on the driver. Prints
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
# names and at most 200 rejects; a list of every path (or of every stored identity) of 50,000 photos is
# several MB.
MAX_RESULT_SIZE = "2m"


def main(input_dir: str, output: str, store: str) -> int:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.maxResultSize", MAX_RESULT_SIZE)
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    runs = []
    with tempfile.NamedTemporaryFile(suffix=".weights") as weights:
        for name in ("first", "second"):
            plan = RunPlan(
                mode="fit",
                input=input_dir,
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
            result, _ = store_featurize_stage(spark, plan, store, new_run_id("fit"), Timings())
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
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
    sys.exit(main(*sys.argv[1:4]))
