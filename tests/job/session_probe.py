"""Run as a script: the job's local session (spark_job.driver.session), and what it gives its JVM.

Prints one JSON line: {"jvm_options": the driver JVM's input arguments}.
"""

from __future__ import annotations

import json
import sys

from spark_job.driver.session import build_session


def main() -> int:
    spark = build_session("fruits-session-probe", "local[1]")
    try:
        runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
        line = {"jvm_options": list(runtime.getInputArguments())}
    finally:
        spark.stop()
    sys.stdout.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
