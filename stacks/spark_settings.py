"""Spark settings of the EMR cluster: the one place to tune them (spark-defaults and spark-env).

They become the cluster's `spark-defaults` and `spark-env` classifications (stacks/cluster.py), so every
spark-submit step gets them without `--conf` arguments (CloudFormation rejects duplicate items in a step's
Args, and two `--conf` tokens would be duplicates). They are part of the run id: changing a value here
re-runs the job on the next deploy, on a new cluster, under a new runs/<run-id>/.

Starting values for the default 1 primary + 2 core m5.xlarge (4 vCPU, 16 GiB) nodes; tune them after
benchmarking. Values must be strings (EMR configuration properties are string maps).
"""

from __future__ import annotations

from types import MappingProxyType

from spark_job.config import DEFAULT_ENGINE

# Executor memory overhead by featurize engine: it holds the 4 Python workers and the JVM's off-heap buffers.
# Measured locally (2026-12-01, 224 px, batches of 32, peak RSS of one Spark Python worker):
#   litert     ~0.2 GB (interpreter ~75 MB + pandas, pyarrow, Arrow batches): 4 x 0.2 + ~1 GB JVM off-heap
#              and headroom = 2g, so an executor needs 2g + 2g = 4g;
#   tensorflow ~1.2-1.3 GB (TF + the Keras network): 4 x 1.3 + JVM off-heap = 6g.
# The deployed steps run the job's default engine (no --engine in their arguments), so the overhead follows
# it; a deployment that switches the steps to tensorflow must take EXECUTOR_MEMORY_OVERHEAD["tensorflow"],
# or YARN kills its containers. (#14 derives these per instance type: fold the per-worker figures in.)
STEP_ENGINE = DEFAULT_ENGINE
EXECUTOR_MEMORY_OVERHEAD = MappingProxyType({"litert": "2g", "tensorflow": "6g"})

# The interpreter PySpark runs on: EMR 7.x (Amazon Linux 2023) keeps /usr/bin/python3 at 3.9; the bootstrap
# action installs the job's pins for python3.11, which EMR 7.1+ ships beside it.
PYSPARK_PYTHON = "/usr/bin/python3.11"

# spark-env "export" classification: the environment spark-submit and the daemons start with.
SPARK_ENV_EXPORTS = MappingProxyType(
    {
        "PYSPARK_PYTHON": PYSPARK_PYTHON,
        "PYSPARK_DRIVER_PYTHON": PYSPARK_PYTHON,
    }
)

# spark-defaults classification (/etc/spark/conf/spark-defaults.conf on every node).
SPARK_DEFAULTS = MappingProxyType(
    {
        # python3.11 for the driver (cluster deploy mode: it runs in the YARN application master) and the
        # executors' Python workers; spark-env alone does not reach YARN containers.
        "spark.pyspark.python": PYSPARK_PYTHON,
        "spark.pyspark.driver.python": PYSPARK_PYTHON,
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON": PYSPARK_PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": PYSPARK_PYTHON,
        # One executor per core node using its 4 vCPUs: 4 concurrent tasks, so 4 Python workers, each with
        # its own engine (the overhead per engine is above). The JVM only reads small files and writes
        # Parquet: a small heap, and an overhead that holds the Python workers and the JVM's off-heap
        # buffers. 2g + 2g (litert) or 2g + 6g (tensorflow) fits in the ~12 GiB YARN offers on an
        # m5.xlarge, beside the driver (cluster mode: 2g + 1g in the application master).
        "spark.executor.cores": "4",
        "spark.executor.memory": "2g",
        "spark.executor.memoryOverhead": EXECUTOR_MEMORY_OVERHEAD[STEP_ENGINE],
        "spark.driver.memory": "2g",
        "spark.driver.memoryOverhead": "1g",
        # Keep Python workers (and the model each one loads) alive across tasks.
        "spark.python.worker.reuse": "true",
        # Arrow for the driver's pandas conversions (the report). The job sets the Arrow batch feeding its
        # featurize function (one inference batch) and the file packing (~500 small files per task).
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Inference threads per Python worker are not set here: the job gives each worker's engine
        # spark.task.cpus threads (1 by default), so 4 workers x 1 thread on 4 vCPUs, no oversubscription;
        # the one rule is in spark_job/plan.py. Measured here (make bench): two single-threaded workers beat
        # one two-threaded process. OpenMP (NumPy's BLAS in the workers) gets one thread for the same reason.
        "spark.executorEnv.OMP_NUM_THREADS": "1",
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
        "spark.yarn.appMasterEnv.TF_CPP_MIN_LOG_LEVEL": "2",
        # A failed task is retried a few times, a failed application is not resubmitted by YARN (a second
        # attempt would find the first one's partial output).
        "spark.yarn.maxAppAttempts": "1",
    }
)
