"""The EC2 instance types the cluster may use: vCPUs, memory and the memory YARN offers on each, by family.

The table is what the Spark settings are derived from (stacks/spark_settings.py) and what the fleets list
(stacks/cluster.py). Only general-purpose families (4 GiB per vCPU) are allowed: each Python worker holds
its own TensorFlow and MobileNetV2 (~1.3 GB, measured), so the compute families (2 GiB per vCPU) cannot run
one worker per vCPU beside the driver (the sizing rule refuses them at synth, see the tests).

Sources:
- vCPUs and memory: the EC2 instance type pages, https://aws.amazon.com/ec2/instance-types/m5/ (m5, m5a),
  /m6i/, /m6a/, /m7i/, /m6g/, /m7g/ (general purpose: 4 GiB per vCPU at every size listed here).
- YARN memory (`yarn.nodemanager.resource.memory-mb`): the EMR Release Guide's "Task configuration" tables,
  https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-hadoop-task-config.html. xlarge 12288 MiB agrees
  with the ~12 GiB the m5.xlarge nodes offer (this repo's earlier sizing); the larger sizes were not
  re-read offline (2026-12-01): check them there before relying on an 8xlarge.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

X86_64 = "x86_64"
AARCH64 = "aarch64"
# The `architecture` context key speaks AWS's names (arm64); the locks and wheels speak Python's (aarch64).
ARCHITECTURES = MappingProxyType({"x86_64": X86_64, "arm64": AARCH64})


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    yarn_memory_mib: int  # what YARN's NodeManager offers containers on an EMR node of this type
    arch: str  # x86_64 or aarch64

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def memory_per_vcpu_mib(self) -> int:
        return self.memory_mib // self.vcpus


# size: (vCPUs, memory GiB, YARN MiB), the same in every general-purpose family listed below.
_GENERAL_SIZES = {
    "xlarge": (4, 16, 12288),
    "2xlarge": (8, 32, 24576),
    "4xlarge": (16, 64, 57344),
    "8xlarge": (32, 128, 122880),
}
# Families in the order a fleet lists them (the on-demand fleets pick the cheapest with capacity anyway).
GENERAL_FAMILIES = MappingProxyType(
    {
        X86_64: ("m5", "m6i", "m5a", "m6a", "m7i"),
        AARCH64: ("m7g", "m6g"),
    }
)

INSTANCE_TYPES = MappingProxyType(
    {
        f"{family}.{size}": InstanceType(f"{family}.{size}", vcpus, gib * 1024, yarn, arch)
        for arch, families in GENERAL_FAMILIES.items()
        for family in families
        for size, (vcpus, gib, yarn) in _GENERAL_SIZES.items()
    }
)
SIZES = tuple(_GENERAL_SIZES)


def lookup(name: str) -> InstanceType | None:
    return INSTANCE_TYPES.get(name)


MIN_FLEET_TYPES, MAX_FLEET_TYPES = 3, 5

# Fleet provisioning, shared by the cluster (stacks/cluster.py), the network and the cost calculator (ops).
# Two AZs: the stacks are environment-agnostic, and CDK then picks two with Fn::GetAZs (stacks/network.py).
AZ_COUNT = 2
# Minutes EMR waits for Spot capacity before SWITCH_TO_ON_DEMAND provisions the task fleet on-demand.
SPOT_TIMEOUT_MINUTES = 10


def preset_types(arch: str, size: str = "xlarge") -> tuple[str, ...]:
    """The default fleet: `size` of every allowed family of the architecture, then the next size up (twice
    the vCPUs and memory, weighted capacity 2) until the fleet has MIN_FLEET_TYPES interchangeable types."""
    types = [f"{family}.{size}" for family in GENERAL_FAMILIES[arch]]
    bigger = SIZES[SIZES.index(size) + 1] if SIZES.index(size) + 1 < len(SIZES) else None
    if len(types) < MIN_FLEET_TYPES and bigger is not None:
        types += [f"{family}.{bigger}" for family in GENERAL_FAMILIES[arch]]
    return tuple(types[:MAX_FLEET_TYPES])
