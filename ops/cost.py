"""`python -m ops cost`: the estimated time per stage, step time and dollars of one run for the current
configuration, from each stage's measured cost per photo.

What is measured and what is estimated:
- measured (ops/data/rates.json, written only by the deliberate `make record-rates` with its date, CPU,
  cores, load and versions): per stage of the job, the vCPU-seconds per photo (inference, and every stage
  after it: listing, the store's lookup and assembly, PCA, projection, the probe's evaluation) and the
  fixed seconds (weights, conversion, model folder and the app's classifier, report, the Spark session's
  start); the probe's training cost per row, bounded since it learns from at most `rows_per_class` photos
  of each class (spark_job/driver/probe.py);
- estimated: how those rates carry over to an EMR vCPU (EC2 vCPUs of m5/m6i/m7i/m6a/m5a are hyperthreads:
  between half and all of the measured rate, so every measured second is a range; a Graviton vCPU is a
  core, the same range is kept since the rates were measured on x86_64); that a stage's per-photo work
  spreads over every executor vCPU; the cluster's start with bootstrap and its termination; the prices
  (ops/data/prices_*.json, with their date, source and Spot discount assumption).

A run is the deployed pair of steps: every photo through fit's stages (the transform step's photos counted
as fitted: its stages are a subset of fit's), plus the second step's own start (session, weights,
conversion, report).

The cluster is the one `cdk synth` would build from cdk.json's context and the same `-c key=value`
overrides, validated the same way (stacks/config.py). Every node is billed from the cluster's start to its
end (per second); Spot task nodes at the stated discount on EC2, the EMR fee unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stacks.config import AppConfig, check_context_keys
from stacks.instance_types import AZ_COUNT, INSTANCE_TYPES, SPOT_TIMEOUT_MINUTES

DATA_DIR = Path(__file__).resolve().parent / "data"
RATES_FILE = DATA_DIR / "rates.json"
# An EMR vCPU does between this share and all of the measured per-vCPU rate (hyperthreads, see above).
HYPERTHREAD_LOW_SHARE = 0.5
# Fixed minutes of a run, estimated (docs/cost.md): EC2 start, bootstrap installing the wheelhouse from S3
# on each node, and termination.
CLUSTER_START_AND_END_MIN = 12.0
# The sizes every estimate is shown at: Fruits-360 (the seeds' dataset), 1M and 10M photos.
REFERENCE_IMAGES = (90_483, 1_000_000, 10_000_000)
# Fruits-360 (100x100, 90,483 photos) has 131 classes: the probe's training is bounded by them.
DEFAULT_CLASSES = 131
# The stages of a fit run as the manifest's timings_s names them, in run order; the probe apart (ProbeRate).
# A stage's estimate: its fixed seconds plus its vCPU-seconds per photo spread over the executors' vCPUs.
INFERENCE_STAGE = "store_infer"
RUN_STAGES = (
    "session",  # the Spark session's start and the manifest: the whole run outside its stages
    "weights",
    "convert",
    "list",
    "store_lookup",
    INFERENCE_STAGE,
    "store_assemble",
    "fit_pca",
    "project",
    "probe",
    "write_model",  # the Spark ML models (without the export below)
    "export_classifier",
    "report",
)
# What the transform step adds to a run besides its photos (counted in fit's stages).
SECOND_STEP_STAGES = ("session", "weights", "convert", "report")


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
class StageRate:
    """A stage's measured cost: fixed seconds, plus vCPU-seconds per photo."""

    fixed_s: float = 0.0
    vcpu_s_per_image: float = 0.0

    def seconds(self, images: int, vcpus: int) -> float:
        """On `vcpus` vCPUs as fast as the measuring machine's."""
        return self.fixed_s + images * self.vcpu_s_per_image / vcpus


@dataclass(frozen=True)
class ProbeRate:
    """The probe: trained on at most rows_per_class photos of each class, evaluated on every photo."""

    fixed_s: float
    vcpu_s_per_training_row: float
    vcpu_s_per_image: float
    rows_per_class: int

    def training_rows(self, images: int, classes: int) -> int:
        return min(images, self.rows_per_class * classes)

    def seconds(self, images: int, classes: int, vcpus: int) -> float:
        training = self.training_rows(images, classes) * self.vcpu_s_per_training_row
        return self.fixed_s + (training + images * self.vcpu_s_per_image) / vcpus


@dataclass(frozen=True)
class MeasuredRates:
    """ops/data/rates.json: what `make record-rates` measured, and where."""

    date: str  # ISO 8601, UTC
    machine: str  # CPU model and platform (bench.throughput_record.machine_description)
    cores: int  # the cores the job ran on (local[*])
    load: str  # the load averages during the measurement
    versions: Mapping[str, str]
    engine: str
    image_size: int
    source: str  # the commands and sizes that produced the numbers
    stages: Mapping[str, StageRate]  # every name of RUN_STAGES but the probe
    probe: ProbeRate
    notes: Mapping[str, Any] = field(default_factory=dict)  # the raw measurements the rates come from

    @classmethod
    def read(cls, path: Path = RATES_FILE) -> MeasuredRates:
        if not path.is_file():
            raise CostInputError(f"no measured rates: {path} is missing (make record-rates writes it)")
        doc = json.loads(path.read_text())
        stages = {name: StageRate(**rate) for name, rate in doc["stages"].items()}
        missing = [name for name in RUN_STAGES if name != "probe" and name not in stages]
        if missing:
            raise CostInputError(f"{path} has no rate for the stages {missing}: run make record-rates")
        return cls(**{**doc, "stages": stages, "probe": ProbeRate(**doc["probe"])})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @property
    def inference(self) -> StageRate:
        return self.stages[INFERENCE_STAGE]


def stage_seconds(rates: MeasuredRates, images: int, classes: int, vcpus: int) -> dict[str, float]:
    """Each stage's seconds for a fit of `images` photos of `classes` classes on `vcpus` executor vCPUs
    as fast as the measuring machine's, in RUN_STAGES order, then the second step's fixed stages."""
    seconds = {
        name: rates.probe.seconds(images, classes, vcpus)
        if name == "probe"
        else rates.stages[name].seconds(images, vcpus)
        for name in RUN_STAGES
    }
    seconds["transform step start"] = sum(rates.stages[name].fixed_s for name in SECOND_STEP_STAGES)
    return seconds


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
    classes: int
    executor_vcpus: int
    rates: MeasuredRates
    fleets: tuple[FleetCost, ...]
    network_usd_per_hour: float
    stage_minutes: Mapping[str, tuple[float, float]]  # per stage: fast, slow
    minutes: tuple[float, float]  # whole run (start to end): fast, slow
    usd: tuple[float, float]

    @property
    def usd_per_hour(self) -> float:
        return sum(f.usd_per_hour for f in self.fleets) + self.network_usd_per_hour

    @property
    def steps_minutes(self) -> tuple[float, float]:
        return (
            sum(m[0] for m in self.stage_minutes.values()),
            sum(m[1] for m in self.stage_minutes.values()),
        )


def _fleet(
    role: str, names: Sequence[str], capacity: int, weights: Mapping[str, int], spot: bool, prices: Prices
):
    """The cheapest type per unit of capacity (what the lowest-price and price-capacity strategies aim at)."""
    cheapest = min(names, key=lambda n: prices.hourly(n, spot) / weights[n])
    nodes = math.ceil(capacity / weights[cheapest])
    return FleetCost(
        role, "spot" if spot else "on-demand", cheapest, nodes, nodes * prices.hourly(cheapest, spot)
    )


def estimate(
    config: AppConfig, images: int, rates: MeasuredRates, prices: Prices, classes: int = DEFAULT_CLASSES
) -> Estimate:
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
    stage_minutes = {
        name: (seconds / 60, seconds / HYPERTHREAD_LOW_SHARE / 60)
        for name, seconds in stage_seconds(rates, images, classes, executor_vcpus).items()
    }
    steps = (sum(m[0] for m in stage_minutes.values()), sum(m[1] for m in stage_minutes.values()))
    spot_wait = SPOT_TIMEOUT_MINUTES if config.task_capacity and config.task_market == "spot" else 0.0
    minutes = (CLUSTER_START_AND_END_MIN + steps[0], CLUSTER_START_AND_END_MIN + steps[1] + spot_wait)
    network = prices.nat_hour if config.egress == "nat" else AZ_COUNT * prices.kms_endpoint_az_hour
    per_hour = sum(f.usd_per_hour for f in fleets) + network
    # The slow end: no Spot capacity came, SWITCH_TO_ON_DEMAND bought the task fleet on-demand.
    worst_per_hour = per_hour
    if spot_wait:
        on_demand = _fleet("task", config.task_types, config.task_capacity, weights, False, prices)
        worst_per_hour += on_demand.usd_per_hour - fleets[-1].usd_per_hour
    return Estimate(
        images=images,
        classes=classes,
        executor_vcpus=executor_vcpus,
        rates=rates,
        fleets=tuple(fleets),
        network_usd_per_hour=network,
        stage_minutes=stage_minutes,
        minutes=minutes,
        usd=(per_hour * minutes[0] / 60, worst_per_hour * minutes[1] / 60),
    )


def _duration(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 10:
        return f"{minutes:.1f} min"
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _range(minutes: tuple[float, float]) -> str:
    return f"{_duration(minutes[0])} to {_duration(minutes[1])}"


def stage_table(estimates: Sequence[Estimate]) -> list[str]:
    """Per stage, its time range at each estimate's number of photos (a Markdown table)."""
    lines = [
        "| stage | " + " | ".join(f"{est.images:,} photos" for est in estimates) + " |",
        "|---|" + "---:|" * len(estimates),
    ]
    for name in estimates[0].stage_minutes:
        lines.append(f"| {name} | " + " | ".join(_range(est.stage_minutes[name]) for est in estimates) + " |")
    lines.append(
        "| **steps** | " + " | ".join(f"**{_range(est.steps_minutes)}**" for est in estimates) + " |"
    )
    lines.append("| **run, start to end** | " + " | ".join(_range(est.minutes) for est in estimates) + " |")
    lines.append(
        "| **one run** | " + " | ".join(f"${est.usd[0]:.2f} to ${est.usd[1]:.2f}" for est in estimates) + " |"
    )
    return lines


def render(estimates: Sequence[Estimate], config: AppConfig, prices: Prices) -> str:
    """The estimate of the requested size is the first of `estimates`; the others are the reference sizes."""
    est = estimates[0]
    r = est.rates
    fleets = "; ".join(f"{f.role} {f.nodes} x {f.instance_type} {f.market}" for f in est.fleets)
    spot_note = (
        f" (slow end: {SPOT_TIMEOUT_MINUTES} min waiting for Spot, then the task fleet on-demand)"
        if config.task_capacity and config.task_market == "spot"
        else ""
    )
    after = sum(rate.vcpu_s_per_image for name, rate in r.stages.items() if name != INFERENCE_STAGE)
    fixed = sum(rate.fixed_s for rate in r.stages.values())
    by_size = sorted(estimates, key=lambda e: e.images)
    lines = [
        f"configuration: {fleets}; {est.executor_vcpus} executor vCPUs; egress={config.egress}",
        f"measured: {r.date}, {r.machine}, {r.cores} cores, load {r.load} (ops/data/rates.json, "
        "make record-rates)",
        f"  inference {1000 * r.inference.vcpu_s_per_image:.2f} ms of vCPU per photo ({r.engine}, "
        f"{r.image_size} px); the stages after it {1000 * (after + r.probe.vcpu_s_per_image):.2f} ms per "
        f"photo; fixed stages {fixed:.0f} s; the probe learns from at most {r.probe.rows_per_class:,} photos "
        f"per class ({est.classes} classes: {1000 * r.probe.vcpu_s_per_training_row:.2f} ms per row)",
        f"estimated: an EMR vCPU does {HYPERTHREAD_LOW_SHARE:.0%}-100% of that; cluster start, bootstrap "
        f"and end {CLUSTER_START_AND_END_MIN:.0f} min",
        f"prices: {prices.region} {prices.date}, Spot EC2 -{prices.spot_discount:.0%}, EMR fee unchanged; "
        f"{prices.status}",
        f"cluster: ${est.usd_per_hour:.3f}/h (network ${est.network_usd_per_hour:.3f}/h)",
        "",
        *stage_table(by_size),
        "",
        f"images: {est.images:,}",
        f"steps: {_range(est.steps_minutes)}",
        f"run, start to end: {_range(est.minutes)}{spot_note}",
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
    images: int,
    overrides: Mapping[str, Any],
    *,
    cdk_json: Path,
    rates_file: Path = RATES_FILE,
    classes: int = DEFAULT_CLASSES,
) -> str:
    config = cluster_config(cdk_json, overrides)
    prices = Prices.read(config.region)
    rates = MeasuredRates.read(rates_file)
    sizes = [images, *(n for n in REFERENCE_IMAGES if n != images)]
    return render([estimate(config, n, rates, prices, classes) for n in sizes], config, prices)
