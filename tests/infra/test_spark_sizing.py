"""The Spark executor sizing derived from the instance-type table, for every allowed family and size."""

from __future__ import annotations

import pytest

from stacks.instance_types import GENERAL_FAMILIES, INSTANCE_TYPES, SIZES, InstanceType, preset_types
from stacks.spark_settings import (
    DRIVER_HEAP_MIB,
    DRIVER_OVERHEAD_MIB,
    ENGINE_WORKER_MIB,
    EXECUTOR_HEAP_MIB,
    WORKER_MIB_BY_ENGINE,
    SizingError,
    size_executors,
)

TF_MIB = WORKER_MIB_BY_ENGINE["tensorflow"]

# What the cluster ran with before the sizing was derived (hand-written for m5.xlarge, TensorFlow workers):
# the rule must give exactly these for it.
M5_XLARGE_EXECUTORS = {
    "spark.executor.cores": "4",
    "spark.task.cpus": "1",
    "spark.executor.memory": "2g",
    "spark.executor.memoryOverhead": "6g",
    "spark.driver.memory": "2g",
    "spark.driver.memoryOverhead": "1g",
}
# vCPUs -> (executor cores, overhead) for the general-purpose sizes: one single-threaded worker per vCPU.
EXPECTED = {4: ("4", "6g"), 8: ("8", "11g"), 16: ("16", "22g"), 32: ("32", "42g")}
# The same with LiteRT workers (~0.19 GB each, 256 MiB with headroom): the deployed default.
EXPECTED_LITERT = {4: ("4", "2g"), 8: ("8", "3g"), 16: ("16", "5g"), 32: ("32", "9g")}


def test_m5_xlarge_gives_the_values_it_always_had():
    assert size_executors([INSTANCE_TYPES["m5.xlarge"]], TF_MIB).spark_defaults() == M5_XLARGE_EXECUTORS
    litert = size_executors([INSTANCE_TYPES["m5.xlarge"]]).spark_defaults()
    assert litert == {**M5_XLARGE_EXECUTORS, "spark.executor.memoryOverhead": "2g"}


def test_the_table_covers_every_allowed_family_and_size():
    names = {
        f"{family}.{size}" for families in GENERAL_FAMILIES.values() for family in families for size in SIZES
    }
    assert set(INSTANCE_TYPES) == names


@pytest.mark.parametrize("name", sorted(INSTANCE_TYPES))
def test_every_allowed_type_is_sized_to_fit_yarn(name: str):
    instance = INSTANCE_TYPES[name]
    litert = size_executors([instance]).spark_defaults()
    assert (litert["spark.executor.cores"], litert["spark.executor.memoryOverhead"]) == EXPECTED_LITERT[
        instance.vcpus
    ]
    sizing = size_executors([instance], TF_MIB)
    settings = sizing.spark_defaults()
    assert (settings["spark.executor.cores"], settings["spark.executor.memoryOverhead"]) == EXPECTED[
        instance.vcpus
    ]
    # Every vCPU runs a task with one engine thread (the plan's rule: threads = spark.task.cpus).
    assert sizing.executor_cores == instance.vcpus
    assert sizing.task_cpus == sizing.engine_threads == 1
    # The executor and the driver's AM fit in what YARN offers on the node, the Python workers included.
    executor = EXECUTOR_HEAP_MIB + sizing.overhead_mib
    assert executor + DRIVER_HEAP_MIB + DRIVER_OVERHEAD_MIB <= instance.yarn_memory_mib
    assert sizing.overhead_mib >= sizing.tasks * TF_MIB >= sizing.tasks * ENGINE_WORKER_MIB
    assert sizing.weighted_capacity(instance) == 1


def test_memory_bound_workers_get_more_cores_each():
    """When the workers do not fit one per vCPU, fewer tasks run, each with more cores (engine threads)."""
    tight = InstanceType("x.tight", vcpus=4, memory_mib=8192, yarn_memory_mib=9216, arch="x86_64")
    sizing = size_executors([tight], TF_MIB)
    assert (sizing.tasks, sizing.task_cpus, sizing.executor_cores) == (2, 2, 4)
    assert sizing.spark_defaults()["spark.task.cpus"] == "2"


def test_a_type_without_room_for_one_worker_is_refused():
    small = InstanceType("c.small", vcpus=4, memory_mib=8192, yarn_memory_mib=6144, arch="x86_64")
    with pytest.raises(SizingError, match="not one 1300 MiB Python worker"):
        size_executors([small], TF_MIB)


def test_mixed_ratios_are_refused():
    compute = InstanceType("c5.2xlarge", vcpus=8, memory_mib=16384, yarn_memory_mib=12288, arch="x86_64")
    with pytest.raises(SizingError, match="one memory-per-vCPU ratio"):
        size_executors([INSTANCE_TYPES["m5.xlarge"], compute])


def test_bigger_types_hold_several_slots_of_the_smallest():
    sizing = size_executors([INSTANCE_TYPES[n] for n in ("m5.xlarge", "m6i.2xlarge", "m7i.8xlarge")], TF_MIB)
    assert sizing.spark_defaults() == M5_XLARGE_EXECUTORS
    weights = [
        sizing.weighted_capacity(INSTANCE_TYPES[n]) for n in ("m5.xlarge", "m6i.2xlarge", "m7i.8xlarge")
    ]
    assert weights == [1, 2, 8]


@pytest.mark.parametrize("arch", sorted(GENERAL_FAMILIES))
def test_presets_have_three_to_five_types_of_one_ratio_and_architecture(arch: str):
    preset = [INSTANCE_TYPES[n] for n in preset_types(arch)]
    assert 3 <= len(preset) <= 5
    assert {t.arch for t in preset} == {arch}
    assert len({t.memory_per_vcpu_mib for t in preset}) == 1
    assert size_executors(preset, TF_MIB).spark_defaults() == M5_XLARGE_EXECUTORS


def test_the_table_and_runtime_deps_agree_on_each_types_architecture():
    from stacks.runtime_deps import arch_of_instance_type

    assert {name: t.arch for name, t in INSTANCE_TYPES.items()} == {
        name: arch_of_instance_type(name) for name in INSTANCE_TYPES
    }


def test_the_python_workers_s3_client_gets_the_deployment_region():
    """pyarrow's S3 client in the Python workers lists and reads the photos; without a region it would ask
    S3's global endpoint, which the cluster's subnet (no internet route) cannot reach."""
    from stacks.spark_settings import spark_defaults

    settings = spark_defaults(size_executors([INSTANCE_TYPES["m5.xlarge"]]), "eu-west-3")
    assert (
        settings["spark.executorEnv.AWS_REGION"]
        == settings["spark.yarn.appMasterEnv.AWS_REGION"]
        == "eu-west-3"
    )
