"""`python -m ops cost`: the estimated step time and dollars of one run for the current configuration.

What is measured and what is estimated:
- measured: the featurize throughput per vCPU of the job's own featurize stage (ops/data/throughput.json,
  written by `make bench`, with its date and machine);
- estimated: how that rate carries over to an EMR vCPU (EC2 vCPUs of m5/m6i/m7i/m6a/m5a are hyperthreads:
  between half and all of the measured rate, so the estimate is a range; a Graviton vCPU is a core, the
  same range is kept since the rate was measured on x86_64), the fixed costs of a run (cluster start with
  bootstrap, step start-ups, PCA, probe and writes, termination), and the prices (ops/data/prices_*.json,
  with their date, source and Spot discount assumption).

The cluster is the one `cdk synth` would build from cdk.json's context and the same `-c key=value`
overrides, validated the same way (stacks/config.py). Every node is billed from the cluster's start to its
end (per second); Spot task nodes at the stated discount on EC2, the EMR fee unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.throughput_record import THROUGHPUT_FILE, ThroughputRecord
from stacks.config import AppConfig, check_context_keys
from stacks.instance_types import AZ_COUNT, INSTANCE_TYPES, SPOT_TIMEOUT_MINUTES

DATA_DIR = Path(__file__).resolve().parent / "data"
# An EMR vCPU does between this share and all of the measured per-vCPU rate (hyperthreads, see above).
HYPERTHREAD_LOW_SHARE = 0.5
# Fixed minutes of a run, estimated (README, Cost): EC2 start, bootstrap installing the wheelhouse from S3
# on each node and termination (12); the two steps' start-ups, PCA, probe and writes (3).
CLUSTER_START_AND_END_MIN = 12.0
STEPS_FIXED_MIN = 3.0


class CostInputError(ValueError):
    """A price or throughput file that does not cover the configuration (the message says what)."""


@dataclass(frozen=True)
class Prices:
    region: str
    date: str
    status: str
    spot_discount: float
    types: Mapping[str, tuple[float, float]]  # name -> (EC2 on-demand $/h, EMR fee $/h)
    kms_endpoint_az_hour: float
    nat_hour: float

    @classmethod
    def read(cls, region: str, directory: Path = DATA_DIR) -> Prices:
        path = directory / f"prices_{region}.json"
        if not path.is_file():
            raise CostInputError(f"no price table for region {region}: {path} is missing")
        doc = json.loads(path.read_text())
        network = doc["network_usd_per_hour"]
        return cls(
            region=doc["region"],
            date=doc["date"],
            status=doc["status"],
            spot_discount=float(doc["spot"]["ec2_discount"]),
            types={
                name: (float(p["ec2_on_demand_usd_per_hour"]), float(p["emr_usd_per_hour"]))
                for name, p in doc["types"].items()
            },
            kms_endpoint_az_hour=float(network["kms_interface_endpoint_per_az"]),
            nat_hour=float(network["nat_gateway"]) + float(network["nat_public_ipv4"]),
        )

    def hourly(self, instance_type: str, spot: bool) -> float:
        if instance_type not in self.types:
            raise CostInputError(
                f"no {self.region} price for {instance_type} (ops/data/prices_{self.region}.json)"
            )
        ec2, emr = self.types[instance_type]
        return ec2 * (1 - self.spot_discount if spot else 1) + emr


@dataclass(frozen=True)
class FleetCost:
    role: str
    market: str  # on-demand or spot
    instance_type: str  # the type priced: the cheapest per unit of capacity in the fleet
    nodes: int
    usd_per_hour: float  # the whole fleet


@dataclass(frozen=True)
class Estimate:
    images: int
    executor_vcpus: int
    throughput: ThroughputRecord
    fleets: tuple[FleetCost, ...]
    network_usd_per_hour: float
    minutes: tuple[float, float]  # whole run (start to end): fast, slow
    featurize_minutes: tuple[float, float]
    usd: tuple[float, float]

    @property
    def usd_per_hour(self) -> float:
        return sum(f.usd_per_hour for f in self.fleets) + self.network_usd_per_hour


def _fleet(
    role: str, names: Sequence[str], capacity: int, weights: Mapping[str, int], spot: bool, prices: Prices
):
    """The cheapest type per unit of capacity (what the lowest-price and price-capacity strategies aim at)."""
    cheapest = min(names, key=lambda n: prices.hourly(n, spot) / weights[n])
    nodes = math.ceil(capacity / weights[cheapest])
    return FleetCost(
        role, "spot" if spot else "on-demand", cheapest, nodes, nodes * prices.hourly(cheapest, spot)
    )


def estimate(config: AppConfig, images: int, throughput: ThroughputRecord, prices: Prices) -> Estimate:
    sizing = config.executor_sizing
    weights = {
        name: sizing.weighted_capacity(t)
        for name, t in INSTANCE_TYPES.items()
        if t.vcpus >= sizing.slot_vcpus
    }
    fleets = [
        _fleet("primary", config.primary_types, 1, dict.fromkeys(config.primary_types, 1), False, prices),
        _fleet("core", config.core_types, config.core_capacity, weights, False, prices),
    ]
    if config.task_capacity:
        spot = config.task_market == "spot"
        fleets.append(_fleet("task", config.task_types, config.task_capacity, weights, spot, prices))
    executor_vcpus = (config.core_capacity + config.task_capacity) * sizing.slot_vcpus
    rate = throughput.images_per_second_per_vcpu * executor_vcpus
    featurize = (images / rate / 60, images / (rate * HYPERTHREAD_LOW_SHARE) / 60)
    spot_wait = SPOT_TIMEOUT_MINUTES if config.task_capacity and config.task_market == "spot" else 0.0
    fixed = CLUSTER_START_AND_END_MIN + STEPS_FIXED_MIN
    minutes = (fixed + featurize[0], fixed + featurize[1] + spot_wait)
    network = prices.nat_hour if config.egress == "nat" else AZ_COUNT * prices.kms_endpoint_az_hour
    per_hour = sum(f.usd_per_hour for f in fleets) + network
    # The slow end: no Spot capacity came, SWITCH_TO_ON_DEMAND bought the task fleet on-demand.
    worst_per_hour = per_hour
    if spot_wait:
        on_demand = _fleet("task", config.task_types, config.task_capacity, weights, False, prices)
        worst_per_hour += on_demand.usd_per_hour - fleets[-1].usd_per_hour
    return Estimate(
        images=images,
        executor_vcpus=executor_vcpus,
        throughput=throughput,
        fleets=tuple(fleets),
        network_usd_per_hour=network,
        minutes=minutes,
        featurize_minutes=featurize,
        usd=(per_hour * minutes[0] / 60, worst_per_hour * minutes[1] / 60),
    )


def _duration(minutes: float) -> str:
    if minutes < 10:
        return f"{minutes:.1f} min"
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def render(est: Estimate, config: AppConfig, prices: Prices) -> str:
    t = est.throughput
    fleets = "; ".join(f"{f.role} {f.nodes} x {f.instance_type} {f.market}" for f in est.fleets)
    spot_note = (
        f" (slow end: {SPOT_TIMEOUT_MINUTES} min waiting for Spot, then the task fleet on-demand)"
        if config.task_capacity and config.task_market == "spot"
        else ""
    )
    lines = [
        f"configuration: {fleets}; {est.executor_vcpus} executor vCPUs; egress={config.egress}",
        f"measured: {t.images_per_second_per_vcpu} img/s per vCPU ({t.engine}, {t.image_size} px, "
        f"{t.date}, {t.machine})",
        f"estimated: an EMR vCPU does {HYPERTHREAD_LOW_SHARE:.0%}-100% of that; fixed "
        f"{CLUSTER_START_AND_END_MIN + STEPS_FIXED_MIN:.0f} min (start, bootstrap, steps' fixed work, end)",
        f"prices: {prices.region} {prices.date}, Spot EC2 -{prices.spot_discount:.0%}, EMR fee unchanged; "
        f"{prices.status}",
        f"cluster: ${est.usd_per_hour:.3f}/h (network ${est.network_usd_per_hour:.3f}/h)",
        f"images: {est.images:,}",
        f"featurize: {_duration(est.featurize_minutes[0])} to {_duration(est.featurize_minutes[1])}",
        f"run, start to end: {_duration(est.minutes[0])} to {_duration(est.minutes[1])}{spot_note}",
        f"one run: ${est.usd[0]:.2f} to ${est.usd[1]:.2f}",
        f"cost_usd={est.usd[1]:.2f}",
    ]
    return "\n".join(lines)


def parse_context(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs as `cdk -c` takes them (values stay strings; AppConfig parses them)."""
    context: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"not key=value: {item!r}")
        context[key] = value
    return context


def cluster_config(cdk_json: Path, overrides: Mapping[str, Any]) -> AppConfig:
    """The configuration synth would use: cdk.json's context, then the overrides; validated the same way."""
    context = {**json.loads(cdk_json.read_text())["context"], **overrides}
    check_context_keys(context)
    return AppConfig.from_context(context.get, base_dir=cdk_json.parent)


def run(
    images: int, overrides: Mapping[str, Any], *, cdk_json: Path, throughput_file: Path = THROUGHPUT_FILE
) -> str:
    config = cluster_config(cdk_json, overrides)
    prices = Prices.read(config.region)
    return render(estimate(config, images, ThroughputRecord.read(throughput_file), prices), config, prices)
