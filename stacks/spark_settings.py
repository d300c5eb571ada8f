"""Spark settings of the EMR cluster: the one place to tune them (spark-defaults and spark-env).

They become the cluster's `spark-defaults` and `spark-env` classifications (stacks/cluster.py), so every
spark-submit step gets them without `--conf` arguments (CloudFormation rejects duplicate items in a step's
Args, and two `--conf` tokens would be duplicates). They are part of the run id: changing a value here
re-runs the job on the next deploy, on a new cluster, under a new runs/<run-id>/.

The executor sizing is derived from the core and task fleets' instance types (size_executors, from the table
in stacks/instance_types.py); for the default m5.xlarge (4 vCPU, 16 GiB, 12 GiB for YARN) it gives 4 cores,
2g heap, 2g overhead (litert; 6g for tensorflow), 1 CPU per task. Values must be strings (EMR
configuration properties are string maps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from spark_job.contract.names import DEFAULT_ENGINE
from stacks.instance_types import InstanceType

# The interpreter PySpark runs on, by default: EMR 7.x (Amazon Linux 2023) keeps /usr/bin/python3 at 3.9; the
# bootstrap action installs the job's pins for python3.11, which EMR 7.1+ ships beside it (and emr-spark-8.1.0
# makes PySpark's default). The cluster takes its line's (stacks/release_lines.py: ReleaseLine.python).
PYSPARK_PYTHON = "/usr/bin/python3.11"


def spark_env_exports(python: str = PYSPARK_PYTHON) -> dict[str, str]:
    """spark-env "export" classification: the environment spark-submit and the daemons start with."""
    return {"PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}


SPARK_ENV_EXPORTS = MappingProxyType(spark_env_exports())

# Memory of one Python worker (one concurrent task), by featurize engine: peak RSS measured locally
# (224 px, 100-px photos): litert 125 MB for inference alone (2026-12-02). With the scale work's tasks
# (reads in flight, the PCA's blocks of 1,024 x 1,280 doubles and their moments, the projection), at two
# sizes (2026-12-07, make bench-scale and make bench-growth): 226 MB at 20,000 photos, 235 MB at 80,000,
# 291 MB inferring 80,000 and 88,000: flat in the number of photos (a task's memory is its block and its
# batch of 32 photos), so 10M photos need what 80,000 do. m5.xlarge's 2g overhead holds 4 x 291 MB + the
# JVM's 768 MiB off-heap (1.9 GiB); one 12-megapixel photo adds ~110 MB while it decodes, so inputs of
# phone-sized photos need a smaller --batch-size or a larger budget here. tensorflow ~1.2-1.3 GB (TF and
# the Keras network; ~1.7 GB with 64).
# The deployed steps pass no --engine, so they run the job's default engine and the executors are sized
# for it: a deployment that switches the steps to tensorflow must size with WORKER_MIB_BY_ENGINE
# ["tensorflow"], or YARN kills its containers. m5.xlarge: litert 2g overhead, tensorflow 6g.
WORKER_MIB_BY_ENGINE = MappingProxyType({"litert": 256, "tensorflow": 1300})
STEP_ENGINE = DEFAULT_ENGINE
ENGINE_WORKER_MIB = WORKER_MIB_BY_ENGINE[STEP_ENGINE]
# The executor JVM only lists small files and writes Parquet: a small heap, and ~0.75 GiB of off-heap
# buffers (Netty, Arrow) beside the Python workers in its overhead.
EXECUTOR_HEAP_MIB = 2048
EXECUTOR_JVM_OFFHEAP_MIB = 768
# The driver runs in the YARN application master (cluster deploy mode), on a core node: 2g + 1g. Every
# executor slot leaves room for it, since YARN may place the AM on any core node.
DRIVER_HEAP_MIB = 2048
DRIVER_OVERHEAD_MIB = 1024


class SizingError(ValueError):
    """Instance types the job's executors cannot fit on (the message says why)."""


@dataclass(frozen=True)
class ExecutorSizing:
    """One executor per `slot_vcpus` vCPUs of a worker node (core or task), derived from the types' table.

    The rule: the slot is the smallest worker type (all worker types share one vCPU-to-memory ratio, so a
    type with k times its vCPUs holds k slots: its weighted capacity). Concurrent tasks per executor = the
    slot's vCPUs, unless the Python workers would not fit in YARN's memory beside the driver: then fewer
    tasks, each with more cores (spark.task.cpus), which the job gives its engine as threads
    (spark_job/plan.py: threads = spark.task.cpus).
    """

    slot_vcpus: int
    slot_yarn_mib: int
    tasks: int
    task_cpus: int
    overhead_mib: int

    @property
    def executor_cores(self) -> int:
        return self.tasks * self.task_cpus

    @property
    def engine_threads(self) -> int:
        return self.task_cpus

    def weighted_capacity(self, instance_type: InstanceType) -> int:
        return instance_type.vcpus // self.slot_vcpus

    def spark_defaults(self) -> dict[str, str]:
        return {
            "spark.executor.cores": str(self.executor_cores),
            "spark.task.cpus": str(self.task_cpus),
            "spark.executor.memory": _gib(EXECUTOR_HEAP_MIB),
            "spark.executor.memoryOverhead": _gib(self.overhead_mib),
            "spark.driver.memory": _gib(DRIVER_HEAP_MIB),
            "spark.driver.memoryOverhead": _gib(DRIVER_OVERHEAD_MIB),
        }


def _gib(mib: int) -> str:
    return f"{math.ceil(mib / 1024)}g"


def size_executors(
    worker_types: Sequence[InstanceType], worker_mib: int = ENGINE_WORKER_MIB
) -> ExecutorSizing:
    """The executor sizing for core and task fleets made of `worker_types` (see ExecutorSizing)."""
    if not worker_types:
        raise SizingError("no worker instance types")
    ratios = {t.memory_per_vcpu_mib for t in worker_types}
    if len(ratios) != 1:
        raise SizingError(
            "core and task types must share one memory-per-vCPU ratio (Spark settings are cluster-wide), "
            "got " + ", ".join(f"{t.name} ({t.memory_per_vcpu_mib} MiB/vCPU)" for t in worker_types)
        )
    slot = min(worker_types, key=lambda t: (t.vcpus, t.yarn_memory_mib))
    for t in worker_types:
        if t.vcpus % slot.vcpus:
            raise SizingError(
                f"{t.name} ({t.vcpus} vCPUs) is not a multiple of {slot.name} ({slot.vcpus} vCPUs)"
            )
    free = (
        slot.yarn_memory_mib
        - DRIVER_HEAP_MIB
        - DRIVER_OVERHEAD_MIB
        - EXECUTOR_HEAP_MIB
        - EXECUTOR_JVM_OFFHEAP_MIB
    )
    fitting = free // worker_mib
    if fitting < 1:
        raise SizingError(
            f"{slot.name}: {slot.yarn_memory_mib} MiB of YARN memory holds the driver and executor JVMs but "
            f"not one {worker_mib} MiB Python worker"
        )
    task_cpus = math.ceil(slot.vcpus / min(fitting, slot.vcpus))
    tasks = slot.vcpus // task_cpus
    overhead = math.ceil((tasks * worker_mib + EXECUTOR_JVM_OFFHEAP_MIB) / 1024) * 1024
    return ExecutorSizing(slot.vcpus, slot.yarn_memory_mib, tasks, task_cpus, overhead)


# spark-defaults classification (/etc/spark/conf/spark-defaults.conf on every node); the executor sizing
# (ExecutorSizing.spark_defaults) is added per configuration, see spark_defaults().
BASE_SPARK_DEFAULTS = MappingProxyType(
    {
        # python3.11 for the driver (cluster deploy mode: it runs in the YARN application master) and the
        # executors' Python workers; spark-env alone does not reach YARN containers.
        "spark.pyspark.python": PYSPARK_PYTHON,
        "spark.pyspark.driver.python": PYSPARK_PYTHON,
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON": PYSPARK_PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": PYSPARK_PYTHON,
        # Keep Python workers (and the model each one loads) alive across tasks.
        "spark.python.worker.reuse": "true",
        # Arrow for the driver's pandas conversions (the report). The job sets the Arrow batch feeding its
        # map functions (one inference batch) and its photos per task (~1,000) itself.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Inference threads per Python worker are not set here: the job gives each worker's engine
        # spark.task.cpus threads (derived above: 1 when every vCPU gets its own worker), so N workers x 1
        # thread on N vCPUs, no oversubscription; the one rule is in spark_job/plan.py. Measured here
        # (make bench): two single-threaded workers beat one two-threaded process. OpenMP (NumPy's BLAS in
        # the workers) gets one thread for the same reason.
        "spark.executorEnv.OMP_NUM_THREADS": "1",
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
        "spark.yarn.appMasterEnv.TF_CPP_MIN_LOG_LEVEL": "2",
        # A failed task is retried a few times, a failed application is not resubmitted by YARN (a second
        # attempt would find the first one's partial output).
        "spark.yarn.maxAppAttempts": "1",
    }
)


# The keys of BASE_SPARK_DEFAULTS that name the interpreter (spark_defaults puts the line's there).
PYTHON_KEYS = (
    "spark.pyspark.python",
    "spark.pyspark.driver.python",
    "spark.yarn.appMasterEnv.PYSPARK_PYTHON",
    "spark.executorEnv.PYSPARK_PYTHON",
)


def spark_defaults(sizing: ExecutorSizing, region: str, python: str = PYSPARK_PYTHON) -> dict[str, str]:
    """The cluster's spark-defaults: the fixed settings on `python`, the executor sizing of its worker types,
    and the region the Python workers' S3 client (pyarrow, which lists and reads the photos) talks to: its
    own region lookup asks S3's global endpoint, which a subnet without internet access cannot reach."""
    regional = {"spark.executorEnv.AWS_REGION": region, "spark.yarn.appMasterEnv.AWS_REGION": region}
    interpreter = dict.fromkeys(PYTHON_KEYS, python)
    return {**BASE_SPARK_DEFAULTS, **interpreter, **regional, **sizing.spark_defaults()}
