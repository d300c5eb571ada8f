"""`python -m ops cost`: the estimate follows the configuration, the measured rate and the price table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.throughput_record import THROUGHPUT_FILE, ThroughputRecord, write_throughput
from ops.cli import main
from ops.cost import (
    CLUSTER_START_AND_END_MIN,
    HYPERTHREAD_LOW_SHARE,
    STEPS_FIXED_MIN,
    Prices,
    cluster_config,
    estimate,
)
from stacks.config import UnknownContextKeyError
from stacks.instance_types import INSTANCE_TYPES, SPOT_TIMEOUT_MINUTES
from tests.ops.support import REPO

CDK_JSON = REPO / "cdk.json"
RATE = ThroughputRecord(100.0, "tensorflow", 224, 8000, 2, "2026-12-01T20:00Z", "test machine", "test")


@pytest.fixture(scope="module")
def prices() -> Prices:
    return Prices.read("eu-west-3")


def test_the_price_table_covers_every_allowed_type_with_its_date_and_source(prices: Prices):
    doc = json.loads((REPO / "ops" / "data" / "prices_eu-west-3.json").read_text())
    assert doc["date"] and doc["source"] and doc["spot"]["basis"]
    assert set(prices.types) == set(INSTANCE_TYPES)
    assert 0 < prices.spot_discount < 1


def test_the_committed_throughput_names_its_measurement():
    record = ThroughputRecord.read()
    assert record.images_per_second_per_vcpu > 0
    assert record.date and record.machine and record.engine and record.source


def test_default_cluster_estimate(prices: Prices):
    config = cluster_config(CDK_JSON, {})
    est = estimate(config, 96_000, RATE, prices)
    assert est.executor_vcpus == 8  # 2 core slots of 4 vCPUs
    fast = 96_000 / (100.0 * 8) / 60  # 2 min at the measured rate
    assert est.featurize_minutes == pytest.approx((fast, fast / HYPERTHREAD_LOW_SHARE))
    fixed = CLUSTER_START_AND_END_MIN + STEPS_FIXED_MIN
    assert est.minutes == pytest.approx((fixed + fast, fixed + fast / HYPERTHREAD_LOW_SHARE))
    assert [(f.role, f.market, f.nodes) for f in est.fleets] == [
        ("primary", "on-demand", 1),
        ("core", "on-demand", 2),
    ]
    cheapest = min(config.core_types, key=lambda n: sum(prices.types[n]))
    hourly = 3 * sum(prices.types[cheapest]) + 2 * prices.kms_endpoint_az_hour  # egress=none: KMS in 2 AZs
    assert est.usd_per_hour == pytest.approx(hourly)
    assert est.usd == pytest.approx((hourly * est.minutes[0] / 60, hourly * est.minutes[1] / 60))


def test_spot_task_fleet_is_priced_at_the_discount_and_on_demand_at_the_slow_end(prices: Prices):
    config = cluster_config(CDK_JSON, {"taskCapacity": "8"})
    est = estimate(config, 1_000_000, RATE, prices)
    assert est.executor_vcpus == 40
    task = est.fleets[-1]
    assert (task.role, task.market, task.nodes) == ("task", "spot", 8)
    ec2, emr = prices.types[task.instance_type]
    assert task.usd_per_hour == pytest.approx(8 * (ec2 * (1 - prices.spot_discount) + emr))
    on_demand_task = min(8 * sum(prices.types[n]) for n in config.task_types)
    worst = est.usd_per_hour - task.usd_per_hour + on_demand_task
    assert est.usd[1] == pytest.approx(worst * est.minutes[1] / 60)
    fixed = CLUSTER_START_AND_END_MIN + STEPS_FIXED_MIN
    assert est.minutes[1] == pytest.approx(fixed + est.featurize_minutes[1] + SPOT_TIMEOUT_MINUTES)
    on_demand = estimate(
        cluster_config(CDK_JSON, {"taskCapacity": "8", "taskMarket": "on-demand"}), 10**6, RATE, prices
    )
    assert on_demand.usd[0] > est.usd[0]


def test_bigger_types_count_in_executor_slots(prices: Prices):
    fleets = json.dumps({"core": ["m5.2xlarge", "m6i.2xlarge", "m7i.2xlarge"]})
    est = estimate(
        cluster_config(CDK_JSON, {"instanceTypes": fleets, "coreCapacity": "3"}), 10**6, RATE, prices
    )
    assert est.executor_vcpus == 24
    assert est.fleets[1].nodes == 3


def test_graviton_prices_graviton_types(prices: Prices):
    est = estimate(cluster_config(CDK_JSON, {"architecture": "arm64"}), 10**5, RATE, prices)
    assert {f.instance_type.split(".")[0] for f in est.fleets} <= {"m7g", "m6g"}


def test_cli_prints_the_estimate_with_its_inputs(capsys: pytest.CaptureFixture[str], monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["cost", "--images", "1000000", "-c", "taskCapacity=8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("configuration: primary 1 x ")
    assert "task 8 x " in out[0] and " spot;" in out[0]
    assert any(line.startswith("measured: ") and "img/s per vCPU" in line for line in out)
    assert any(line.startswith("prices: eu-west-3 ") for line in out)
    assert out[-1].startswith("cost_usd=")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "--images", "10", "-c", "taskCapasity=8"], "did you mean 'taskCapacity'"),
        (["cost", "--images", "10", "-c", "coreCount=3"], "use coreCapacity"),
        (["cost", "--images", "10", "-c", "taskMarket=cheap"], "taskMarket='cheap'"),
        (["cost", "--images", "10", "-c", "nokeyvalue"], "not key=value"),
    ],
)
def test_cli_bad_context_exits_2_naming_it(argv: list[str], message: str, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_without_images_is_usage():
    assert main(["cost"]) == 2


def test_replaced_keys_in_cdk_json_are_refused(tmp_path: Path):
    doc = json.loads(CDK_JSON.read_text())
    doc["context"]["coreCount"] = 3
    (tmp_path / "cdk.json").write_text(json.dumps(doc))
    with pytest.raises(UnknownContextKeyError, match="coreCount"):
        cluster_config(tmp_path / "cdk.json", {})


def test_the_benchmark_writes_what_the_calculator_reads(tmp_path: Path):
    path = tmp_path / "throughput.json"
    written = write_throughput(
        217.4, vcpus=4, images=8000, image_size=224, engine="tensorflow", source="t", path=path
    )
    assert ThroughputRecord.read(path) == written
    assert written.images_per_second_per_vcpu == pytest.approx(54.35)
    assert written.date.endswith("Z") and "vCPUs" in written.machine
    assert THROUGHPUT_FILE == REPO / "ops" / "data" / "throughput.json"
