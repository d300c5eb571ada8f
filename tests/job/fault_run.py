"""`python -m tests.job.fault_run INPUT OUTPUT MARKER`: the featurize stage under local[2,3] (2 cores, a task
may fail 3 times) with the fake engine, except that one Python worker exits once, in the middle of its task
(tests.job.fake_engine.DyingEngineSpec). Prints the result's counts as JSON.

A process of its own: the session's master (local[2,3]) differs from the test suite's.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from pyspark.sql import SparkSession

from spark_job.contract.records import EngineRecord
from spark_job.driver.featurize import featurize_stage
from spark_job.driver.plan import RunPlan
from spark_job.driver.storage import normalize
from spark_job.driver.timings import Timings
from spark_job.driver.weights import ResolvedWeights
from tests.job.fake_engine import DyingEngineSpec


def main(input_dir: str, output: str, marker: str) -> int:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2,3]")
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "4")  # several batches before the fault
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.NamedTemporaryFile(suffix=".weights") as weights:
        plan = RunPlan(
            mode="transform",
            input=input_dir,
            output=normalize(output),
            overwrite=False,
            image_size=8,
            weights=ResolvedWeights(source="fake", local_path=weights.name, sha256="0" * 64),
            engine_threads=1,
            batch_size=2,
            engine=DyingEngineSpec(marker=marker),
            engine_record=EngineRecord(name="tensorflow", version="fake"),
            engine_files=(),
        )
        result = featurize_stage(spark, plan, Timings())
    sys.stdout.write(
        json.dumps(
            {
                "images": result.inputs.n_images,
                "features": result.n_features,
                "inferred": result.n_inferred,
                "rejected": result.n_rejected,
            }
        )
        + "\n"
    )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
