"""Run as a script: the job's local session (spark_job.session), and what it gives its JVM and Python workers.

Prints one JSON line: {"jvm_options": the driver JVM's input arguments, "worker_env": {name: value} of the
settings spark_job.internals.worker_environment names, as a Python worker sees them}.
"""

from __future__ import annotations

import json
import os
import sys

from spark_job import internals
from spark_job.session import build_session


def main() -> int:
    spark = build_session("fruits-session-probe", "local[1]")
    try:
        names = sorted(internals.worker_environment()) or [internals.DISTUTILS_SETTING]
        seen = spark.sparkContext.parallelize([0], 1).map(lambda _: {n: os.environ.get(n) for n in names})
        runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
        line = {"jvm_options": list(runtime.getInputArguments()), "worker_env": seen.first()}
    finally:
        spark.stop()
    sys.stdout.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
