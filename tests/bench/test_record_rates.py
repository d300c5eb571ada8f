"""`make record-rates`: per-stage rates derived from the CPU seconds of bench-scale's fits and transforms at
N and 4N, in the record `make cost` reads (the measurements are made up: linear in the photos, with known
slopes; CPU seconds equal to wall seconds)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.bare_engine import BareEngineRate
from bench.record_rates import build_record, derive_probe_rate, derive_stage_rates, training_rows
from bench.scale_bench import ScaleResult
from bench.stage_report import top_level_seconds
from ops.cost import INFERENCE_STAGE, RUN_STAGES, MeasuredRates, Prices, cluster_config, estimate
from tests.bench.support import linear_fit_timings, measured_run
from tests.ops.support import REPO

CLASSES = 42
SIZES = (20_000, 80_000)
TRAIN_S_PER_ROW = 5e-4  # the probe's training, CPU seconds per training row
EVAL_S_PER_IMAGE = 2e-5  # its evaluation, per photo
PROBE_FIXED_S = 3.0
SESSION_S = 6.0


def fit_probe_s(images: int) -> float:
    return PROBE_FIXED_S + TRAIN_S_PER_ROW * training_rows(images, CLASSES) + EVAL_S_PER_IMAGE * images


def transform_timings(images: int) -> dict[str, float]:
    fit = linear_fit_timings(images, probe=0.0)
    return {
        **{
            k: fit[k] for k in ("weights", "convert", "list", "store_lookup", "store_infer", "store_assemble")
        },
        "featurize": fit["featurize"],
        "project": fit["project"],
        "probe": 0.5 + EVAL_S_PER_IMAGE * images,
        "report": 1.0,
    }


def scale_result() -> ScaleResult:
    def run(mode: str, images: int, timings: dict[str, float]):
        return measured_run(mode, images, timings, whole_run_s=top_level_seconds(timings) + SESSION_S)

    return ScaleResult(
        sizes=SIZES,
        classes=CLASSES,
        runs={n: [run("fit", n, linear_fit_timings(n, probe=fit_probe_s(n)))] for n in SIZES},
        bare=[BareEngineRate(processes=2, images_per_process=2000, img_s=400.0, cpu_s_per_image=0.005)],
        transforms={n: [run("transform", n, transform_timings(n))] for n in SIZES},
    )


def test_the_probe_trains_on_at_most_1000_photos_per_class():
    assert training_rows(20_000, 42) == 20_000  # 476 per class: all of them
    assert training_rows(80_000, 42) == 42_000  # 1,904 per class: 1,000 each
    assert training_rows(1_500, 2, per_class=1000) == 1_500


def test_per_photo_stages_get_their_slope_in_vcpu_seconds_and_their_intercept():
    rates = derive_stage_rates(scale_result())
    assert rates["list"].vcpu_s_per_image == pytest.approx(1e-4)
    assert rates["list"].fixed_s == pytest.approx(1.0)
    assert rates["fit_pca"].vcpu_s_per_image == pytest.approx(2e-4)
    assert rates["fit_pca"].fixed_s == pytest.approx(2.0)


def test_fixed_stages_get_their_seconds_and_write_model_leaves_the_export_out():
    rates = derive_stage_rates(scale_result())
    assert rates["export_classifier"].fixed_s == pytest.approx(12.0)
    assert rates["write_model"].fixed_s == pytest.approx(2.0)  # 14 s, of which the export's 12
    assert rates["session"].fixed_s == pytest.approx(SESSION_S)
    assert all(rates[name].vcpu_s_per_image == 0 for name in ("weights", "convert", "report", "session"))


def test_the_probe_splits_into_evaluation_per_photo_and_training_per_row():
    probe = derive_probe_rate(scale_result())
    assert probe.vcpu_s_per_image == pytest.approx(EVAL_S_PER_IMAGE)
    assert probe.vcpu_s_per_training_row == pytest.approx(TRAIN_S_PER_ROW)
    assert probe.fixed_s == pytest.approx(PROBE_FIXED_S)
    assert probe.rows_per_class == 1000


def test_the_record_is_what_the_cost_calculator_reads(tmp_path: Path):
    args = argparse.Namespace(cores=2, featurize_images=8000, scale_from=None)
    inference = [
        measured_run("fit", 8000, {INFERENCE_STAGE: cpu_s}, whole_run_s=60.0, inferred=8000)
        for cpu_s in (32.0, 34.0, 80.0)
    ]
    record = build_record(scale_result(), inference, args)
    assert record.inference.vcpu_s_per_image == pytest.approx(34.0 / 8000)  # the median
    assert set(RUN_STAGES) - {"probe"} <= set(record.stages)
    assert record.machine and record.date.endswith("Z") and record.versions["spark"]
    path = tmp_path / "rates.json"
    path.write_text(record.to_json())
    read = MeasuredRates.read(path)
    assert read == record
    est = estimate(cluster_config(REPO / "cdk.json", {}), 1_000_000, read, Prices.read("eu-west-3"))
    assert est.stage_minutes[INFERENCE_STAGE][0] == pytest.approx(1_000_000 * 34.0 / 8000 / 8 / 60)
    assert record.load.startswith("1-min load average 1.0-1.5 during the inference fits")
