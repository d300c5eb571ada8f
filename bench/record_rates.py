"""`make record-rates`: measure each stage's cost per photo on this machine and write ops/data/rates.json,
which `make cost` reads. The only command that writes it: a benchmark never does.

Every number is CPU seconds: those of every process of a run (the driver, the JVM, the Python workers)
between a stage's `started` and `done` log lines (bench.fit_run). On a machine other work shares, a stage's
wall time measures the share of the machine it got; its CPU seconds are what it costs.

1. Inference: the real `fit` with a fresh features store on `--featurize-images` copies of the sample,
   `--featurize-repeats` times: its `store_infer` stage (read, decode, infer, append) gives the
   vCPU-seconds per photo (median).
2. Everything else: bench-scale with `--transform` (bench.scale_bench): fit and transform at N and 4N
   photos the store holds. A stage that grows with the photos gets its slope between N and 4N
   (vCPU-seconds per photo) and its intercept (fixed seconds); a fixed stage gets the mean of its two
   measurements (its CPU seconds stand for its seconds: these stages run on one thread, mostly). The probe
   learns from at most ROWS_PER_CLASS photos of each class and is evaluated on all of them: the
   transform's probe stage (evaluation only) gives the per-photo cost, fit's probe stage the rest, per
   training row.

The record holds the date, the CPU (bench.throughput_record.machine_description), the cores, the load
averages and the versions, with the raw stage times it was derived from. Commit it deliberately.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from bench import scale_bench
from bench.dataset import replicate
from bench.fit_run import RunMeasurement, job_command, measure_job_run
from bench.scale_bench import ScaleResult
from bench.stage_report import OUTSIDE_STAGES, load_line
from bench.throughput_record import machine_description
from ops.cost import INFERENCE_STAGE, RATES_FILE, MeasuredRates, ProbeRate, StageRate
from spark_job.contract.names import DEFAULT_ENGINE, DEFAULT_IMAGE_SIZE
from spark_job.driver.probe import ROWS_PER_CLASS

log = logging.getLogger("bench.record_rates")

# Stages whose work grows with the photos (the store's lookup and assembly include the rejects' check).
PER_IMAGE_STAGES = ("list", "store_lookup", "store_assemble", "fit_pca", "project")
# Stages that do not (the model folder's Spark ML models, the app's classifier, the report's sample).
FIXED_STAGES = ("weights", "convert", "write_model", "export_classifier", "report")
SESSION = "session"


def training_rows(images: int, classes: int, per_class: int = ROWS_PER_CLASS) -> int:
    """The rows fit's probe learns from, for bench.synthetic_store's photos (spread evenly over classes)."""
    return sum(min(len(range(c, images, classes)), per_class) for c in range(classes))


def _own_seconds(timings: Mapping[str, float]) -> dict[str, float]:
    """write_model without the export nested in it; the session: the whole run outside its stages."""
    own = dict(timings)
    own["write_model"] = timings.get("write_model", 0.0) - timings.get("export_classifier", 0.0)
    own[SESSION] = timings[OUTSIDE_STAGES]
    return own


def derive_stage_rates(scale: ScaleResult) -> dict[str, StageRate]:
    """Every stage but inference and the probe, from fit at N and 4N (medians of CPU seconds)."""
    small, large = scale.sizes
    t_small, t_large = _own_seconds(scale.cpu_timings(small)), _own_seconds(scale.cpu_timings(large))
    rates: dict[str, StageRate] = {}
    for name in PER_IMAGE_STAGES:
        slope = max((t_large[name] - t_small[name]) / (large - small), 0.0)
        rates[name] = StageRate(
            fixed_s=round(max(t_small[name] - slope * small, 0.0), 3),
            vcpu_s_per_image=round(slope, 9),
        )
    for name in (*FIXED_STAGES, SESSION):
        rates[name] = StageRate(fixed_s=round((t_small[name] + t_large[name]) / 2, 3))
    return rates


def derive_probe_rate(scale: ScaleResult) -> ProbeRate:
    """Evaluation per photo from transform's probe stage; training per row and the fixed part from fit's."""
    small, large = scale.sizes
    added = large - small
    evaluate = scale.cpu_timings(large, "transform")["probe"] - scale.cpu_timings(small, "transform")["probe"]
    per_image = max(evaluate / added, 0.0)
    rows_small, rows_large = training_rows(small, scale.classes), training_rows(large, scale.classes)
    fit_small, fit_large = scale.cpu_timings(small)["probe"], scale.cpu_timings(large)["probe"]
    per_row = 0.0
    if rows_large > rows_small:
        per_row = max((fit_large - fit_small - per_image * added) / (rows_large - rows_small), 0.0)
    return ProbeRate(
        fixed_s=round(max(fit_small - per_row * rows_small - per_image * small, 0.0), 3),
        vcpu_s_per_training_row=round(per_row, 9),
        vcpu_s_per_image=round(per_image, 9),
        rows_per_class=ROWS_PER_CLASS,
    )


def measure_inference(args: argparse.Namespace, work: Path) -> list[RunMeasurement]:
    """The real fit with a fresh store each time, every photo inferred: its measurements, per repetition."""
    photos = work / "featurize-photos"
    replicate(Path(args.sample), photos, args.featurize_images)
    runs = []
    for rep in range(args.featurize_repeats):
        output = work / f"featurize-fit-{rep}"
        command = job_command(
            "fit",
            "--input",
            photos,
            "--output",
            output,
            "--weights",
            args.weights,
            "--features-store",
            work / f"featurize-store-{rep}",
            "--master",
            args.master,
        )
        log.info("inference, repetition %d/%d; %s", rep + 1, args.featurize_repeats, load_line())
        run = measure_job_run(command, output, work / f"featurize-fit-{rep}.log")
        if run.manifest["images_inferred"] != args.featurize_images:
            raise RuntimeError(f"expected {args.featurize_images} photos inferred, got {run.manifest}")
        log.info(
            "store_infer: %.1f s, %.1f CPU s",
            run.timings_s[INFERENCE_STAGE],
            run.stage_cpu_s[INFERENCE_STAGE],
        )
        runs.append(run)
    return runs


def load_summary(scale: ScaleResult, inference: list[RunMeasurement]) -> str:
    """The 1-minute load averages at the runs' starts and ends: the inference runs', then bench-scale's."""

    def span(runs: list[RunMeasurement]) -> str:
        loads = [value for run in runs for value in (run.load_before, run.load_after)]
        return f"{min(loads):.1f}-{max(loads):.1f}"

    scale_runs = [run for measured in (*scale.runs.values(), *scale.transforms.values()) for run in measured]
    return (
        f"1-min load average {span(inference)} during the inference fits, "
        f"{span(scale_runs)} during bench-scale's"
    )


def build_record(
    scale: ScaleResult, inference: list[RunMeasurement], args: argparse.Namespace
) -> MeasuredRates:
    per_image = statistics.median(run.stage_cpu_s[INFERENCE_STAGE] / run.images for run in inference)
    stages = derive_stage_rates(scale)
    stages[INFERENCE_STAGE] = StageRate(vcpu_s_per_image=round(per_image, 9))
    small, large = scale.sizes
    any_run = scale.runs[small][0]
    return MeasuredRates(
        date=datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ"),
        machine=machine_description(),
        cores=args.cores,
        load=load_summary(scale, inference),
        versions=dict(any_run.manifest["versions"]),
        engine=DEFAULT_ENGINE,
        image_size=DEFAULT_IMAGE_SIZE,
        source=(
            f"make record-rates, CPU seconds of every process per stage: fit with a fresh features store "
            f"({args.featurize_images} photos inferred, median of {len(inference)}); bench.scale_bench "
            f"--transform, fit and transform at "
            f"{small} and {large} photos held by the store, {scale.classes} classes, median of "
            f"{len(scale.runs[small])}"
            + (f" (measured earlier: {args.scale_from.name})" if args.scale_from else "")
            + f"; local[{args.cores}]"
        ),
        stages=dict(sorted(stages.items())),
        probe=derive_probe_rate(scale),
        notes={
            "store_infer_cpu_s": [run.stage_cpu_s[INFERENCE_STAGE] for run in inference],
            "store_infer_s": [run.timings_s[INFERENCE_STAGE] for run in inference],
            "fit_cpu_s": {str(size): scale.cpu_timings(size) for size in scale.sizes},
            "transform_cpu_s": {str(size): scale.cpu_timings(size, "transform") for size in scale.sizes},
            "fit_s": {str(size): scale.timings(size) for size in scale.sizes},
            "whole_run_s": {str(size): scale.whole_run(size) for size in scale.sizes},
            "bare_engine_img_s": scale.bare_img_s,
            "bare_engine_cpu_s_per_image": statistics.median(rate.cpu_s_per_image for rate in scale.bare),
        },
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.record_rates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=20_000, help="bench-scale's N (fits at N and 4N)")
    parser.add_argument("--classes", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=1, help="bench-scale's repetitions")
    parser.add_argument("--featurize-images", type=int, default=8000)
    parser.add_argument("--featurize-repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sample", default=scale_bench.build_parser().get_default("sample"))
    parser.add_argument("--weights", type=Path, default=scale_bench.DEFAULT_WEIGHTS)
    parser.add_argument("--scale-from", type=Path, default=None, help="bench-scale --transform --save's JSON")
    parser.add_argument("--save-scale", type=Path, default=None, help="write bench-scale's measurements here")
    parser.add_argument("--output", type=Path, default=RATES_FILE, help="default: %(default)s")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.weights = args.weights.resolve()
    args.master, args.transform, args.work_dir, args.save, args.load = "local[*]", True, None, None, None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    saved = ScaleResult.load(args.scale_from) if args.scale_from else None
    if saved is not None and not saved.transforms:
        raise SystemExit(f"{args.scale_from} has no transform runs: bench-scale --transform measures them")
    if saved is not None:
        try:
            saved.cpu_timings(saved.sizes[0])
        except ValueError as exc:
            raise SystemExit(f"{args.scale_from}: {exc} (measured by an older bench.fit_run)") from exc
    with tempfile.TemporaryDirectory(prefix="fruits-record-rates-") as tmp:
        inference = measure_inference(args, Path(tmp))
    scale = saved or scale_bench.measure(args)
    if args.save_scale:
        scale.save(args.save_scale)
    record = build_record(scale, inference, args)
    args.output.write_text(record.to_json())
    sys.stdout.write(scale_bench.render(scale, args) + "\n\n")
    sys.stdout.write(record.to_json())
    sys.stdout.write(f"rates_file={args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
