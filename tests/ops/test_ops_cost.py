"""`python -m ops cost`: the estimate follows the configuration, each stage's measured rate and the price
table; per-photo stages grow with the photos, fixed stages do not, the probe's cost is bounded by classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.cli import main
from ops.cost import (
    CLUSTER_START_AND_END_MIN,
    HYPERTHREAD_LOW_SHARE,
    INFERENCE_STAGE,
    RATES_FILE,
    REFERENCE_IMAGES,
    RUN_STAGES,
    SECOND_STEP_STAGES,
    CostInputError,
    MeasuredRates,
    Prices,
    ProbeRate,
    StageRate,
    cluster_config,
    estimate,
    run,
)
from stacks.config import UnknownContextKeyError
from stacks.instance_types import INSTANCE_TYPES, SPOT_TIMEOUT_MINUTES
from tests.ops.support import REPO

CDK_JSON = REPO / "cdk.json"
PER_IMAGE = {
    "list": 0.0002,
    "store_lookup": 0.0001,
    "store_assemble": 0.0003,
    "fit_pca": 0.0004,
    "project": 0.0002,
}
FIXED = {
    "session": 6.0,
    "weights": 0.5,
    "convert": 1.5,
    "write_model": 2.0,
    "export_classifier": 15.0,
    "report": 1.0,
}
RATES = MeasuredRates(
    date="2026-12-07T06:00Z",
    machine="2 vCPUs x86_64 test CPU",
    cores=2,
    load="0.5, 0.7",
    versions={"spark": "3.5.x"},
    engine="litert",
    image_size=224,
    source="test",
    stages={
        INFERENCE_STAGE: StageRate(vcpu_s_per_image=0.004),  # 4 ms of vCPU per photo
        **{name: StageRate(fixed_s=1.0, vcpu_s_per_image=rate) for name, rate in PER_IMAGE.items()},
        **{name: StageRate(fixed_s=seconds) for name, seconds in FIXED.items()},
    },
    probe=ProbeRate(fixed_s=3.0, vcpu_s_per_training_row=0.002, vcpu_s_per_image=0.0001, rows_per_class=1000),
)


@pytest.fixture(scope="module")
def prices() -> Prices:
    return Prices.read("eu-west-3")


def test_the_price_table_covers_every_allowed_type_with_its_date_and_source(prices: Prices):
    doc = json.loads((REPO / "ops" / "data" / "prices_eu-west-3.json").read_text())
    assert doc["date"] and doc["source"] and doc["spot"]["basis"]
    assert set(prices.types) == set(INSTANCE_TYPES)
    assert 0 < prices.spot_discount < 1


def test_the_committed_rates_name_their_measurement_and_cover_every_stage():
    assert RATES_FILE == REPO / "ops" / "data" / "rates.json"
    rates = MeasuredRates.read()
    assert rates.date and rates.machine and rates.cores >= 1 and rates.load and rates.source
    assert {"spark", "ai-edge-litert"} <= set(rates.versions)
    assert set(RUN_STAGES) - {"probe"} <= set(rates.stages)
    assert rates.inference.vcpu_s_per_image > 0
    assert rates.probe.rows_per_class == 1000  # spark_job/driver/probe.py's ROWS_PER_CLASS


def test_the_rates_round_trip_and_a_missing_stage_is_refused(tmp_path: Path):
    path = tmp_path / "rates.json"
    path.write_text(RATES.to_json())
    assert MeasuredRates.read(path) == RATES
    doc = json.loads(path.read_text())
    del doc["stages"]["fit_pca"]
    path.write_text(json.dumps(doc))
    with pytest.raises(CostInputError, match="fit_pca"):
        MeasuredRates.read(path)
    with pytest.raises(CostInputError, match="make record-rates"):
        MeasuredRates.read(tmp_path / "missing.json")


def test_default_cluster_estimate(prices: Prices):
    config = cluster_config(CDK_JSON, {})
    est = estimate(config, 96_000, RATES, prices, classes=12)
    assert est.executor_vcpus == 8  # 2 core slots of 4 vCPUs
    infer = 96_000 * 0.004 / 8 / 60  # 0.8 min at the measured rate
    assert est.stage_minutes[INFERENCE_STAGE] == pytest.approx((infer, infer / HYPERTHREAD_LOW_SHARE))
    fit_pca = (1.0 + 96_000 * 0.0004 / 8) / 60
    assert est.stage_minutes["fit_pca"] == pytest.approx((fit_pca, fit_pca / HYPERTHREAD_LOW_SHARE))
    probe = (3.0 + (12_000 * 0.002 + 96_000 * 0.0001) / 8) / 60  # trained on 1,000 photos of each class
    assert est.stage_minutes["probe"][0] == pytest.approx(probe)
    second_step = sum(FIXED[name] for name in SECOND_STEP_STAGES) / 60
    assert est.stage_minutes["transform step start"][0] == pytest.approx(second_step)
    steps = sum(fast for fast, _ in est.stage_minutes.values())
    assert est.steps_minutes == pytest.approx((steps, steps / HYPERTHREAD_LOW_SHARE))
    assert est.minutes == pytest.approx(
        (CLUSTER_START_AND_END_MIN + steps, CLUSTER_START_AND_END_MIN + steps / HYPERTHREAD_LOW_SHARE)
    )
    assert [(f.role, f.market, f.nodes) for f in est.fleets] == [
        ("primary", "on-demand", 1),
        ("core", "on-demand", 2),
    ]
    cheapest = min(config.core_types, key=lambda n: sum(prices.types[n]))
    hourly = 3 * sum(prices.types[cheapest]) + 2 * prices.kms_endpoint_az_hour  # egress=none: KMS in 2 AZs
    assert est.usd_per_hour == pytest.approx(hourly)
    assert est.usd == pytest.approx((hourly * est.minutes[0] / 60, hourly * est.minutes[1] / 60))


def test_per_photo_stages_scale_with_the_photos_and_fixed_stages_do_not(prices: Prices):
    config = cluster_config(CDK_JSON, {})
    small, large = (estimate(config, n, RATES, prices, classes=12) for n in (100_000, 1_000_000))
    for name in (INFERENCE_STAGE, *PER_IMAGE):
        fixed = RATES.stages[name].fixed_s / 60
        assert large.stage_minutes[name][0] - fixed == pytest.approx(
            10 * (small.stage_minutes[name][0] - fixed)
        )
    for name in FIXED:
        assert (
            large.stage_minutes[name]
            == small.stage_minutes[name]
            == pytest.approx((FIXED[name] / 60, FIXED[name] / 60 / HYPERTHREAD_LOW_SHARE))
        )


def test_the_probe_trains_on_at_most_its_rows_per_class(prices: Prices):
    """Past 1,000 photos per class only its evaluation grows; its training grows with the classes."""
    config = cluster_config(CDK_JSON, {})

    def probe_minutes(images: int, classes: int) -> float:
        return estimate(config, images, RATES, prices, classes).stage_minutes["probe"][0]

    evaluation = 0.0001 / 8 / 60  # minutes per photo on 8 vCPUs
    assert probe_minutes(10**7, 131) - probe_minutes(10**6, 131) == pytest.approx(9 * 10**6 * evaluation)
    training = 0.002 / 8 / 60  # minutes per training row
    assert probe_minutes(10**6, 262) - probe_minutes(10**6, 131) == pytest.approx(131_000 * training)
    # Below the cap every photo is a training row.
    assert probe_minutes(5_000, 131) == pytest.approx((3.0 + 5_000 * (0.002 + 0.0001) / 8) / 60)


def test_spot_task_fleet_is_priced_at_the_discount_and_on_demand_at_the_slow_end(prices: Prices):
    config = cluster_config(CDK_JSON, {"taskCapacity": "8"})
    est = estimate(config, 1_000_000, RATES, prices)
    assert est.executor_vcpus == 40
    task = est.fleets[-1]
    assert (task.role, task.market, task.nodes) == ("task", "spot", 8)
    ec2, emr = prices.types[task.instance_type]
    assert task.usd_per_hour == pytest.approx(8 * (ec2 * (1 - prices.spot_discount) + emr))
    on_demand_task = min(8 * sum(prices.types[n]) for n in config.task_types)
    worst = est.usd_per_hour - task.usd_per_hour + on_demand_task
    assert est.usd[1] == pytest.approx(worst * est.minutes[1] / 60)
    assert est.minutes[1] == pytest.approx(
        CLUSTER_START_AND_END_MIN + est.steps_minutes[1] + SPOT_TIMEOUT_MINUTES
    )
    on_demand = estimate(
        cluster_config(CDK_JSON, {"taskCapacity": "8", "taskMarket": "on-demand"}), 10**6, RATES, prices
    )
    assert on_demand.usd[0] > est.usd[0]


def test_bigger_types_count_in_executor_slots(prices: Prices):
    fleets = json.dumps({"core": ["m5.2xlarge", "m6i.2xlarge", "m7i.2xlarge"]})
    est = estimate(
        cluster_config(CDK_JSON, {"instanceTypes": fleets, "coreCapacity": "3"}), 10**6, RATES, prices
    )
    assert est.executor_vcpus == 24
    assert est.fleets[1].nodes == 3


def test_graviton_prices_graviton_types(prices: Prices):
    est = estimate(cluster_config(CDK_JSON, {"architecture": "arm64"}), 10**5, RATES, prices)
    assert {f.instance_type.split(".")[0] for f in est.fleets} <= {"m7g", "m6g"}


def test_cli_prints_the_estimate_with_its_inputs(capsys: pytest.CaptureFixture[str], monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["cost", "--images", "1000000", "-c", "taskCapacity=8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("configuration: primary 1 x ")
    assert "task 8 x " in out[0] and " spot;" in out[0]
    assert any(line.startswith("measured: ") and "rates.json" in line for line in out)
    assert any(line.startswith("prices: eu-west-3 ") for line in out)
    assert out[-1].startswith("cost_usd=")


def test_the_stage_table_shows_the_requested_size_and_the_reference_sizes(tmp_path: Path):
    path = tmp_path / "rates.json"
    path.write_text(RATES.to_json())
    out = run(250_000, {}, cdk_json=CDK_JSON, rates_file=path).splitlines()
    header = next(line for line in out if line.startswith("| stage |"))
    assert header == "| stage | 90,483 photos | 250,000 photos | 1,000,000 photos | 10,000,000 photos |"
    assert REFERENCE_IMAGES == (90_483, 1_000_000, 10_000_000)
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in out if line.startswith("| ")}
    assert set(RUN_STAGES) <= set(rows)
    assert "images: 250,000" in out and out[-1].startswith("cost_usd=")
    same = run(1_000_000, {}, cdk_json=CDK_JSON, rates_file=path).splitlines()
    assert "| stage | 90,483 photos | 1,000,000 photos | 10,000,000 photos |" in same


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
