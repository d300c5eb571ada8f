"""`make bench-growth N=80000`: the collection grows by 10%, judged on whole runs (start to manifest.json).

1. N photos are generated from the sample's Training photos as perturbed copies (bench.perturbed: each a
   distinct image, so each is really inferred).
2. The first run: `python -m spark_job fit --input <photos> --output <out> --weights <W> --features-store
   <store> --master local[*]`, default settings; it infers the N photos and appends them to the store.
3. N/10 more perturbed copies are added; the second run is the same `fit` on N + N/10 photos with the same
   store: it infers the N/10 new ones and reuses the N others.
4. With `--transform M`: M perturbed copies of the sample's Test photos, then `python -m spark_job
   transform` of them with the first run's model (no store), timed the same way.

Each run is checked (what it inferred and reused) and measured by bench.fit_run (whole run, stages, the
Python driver's peak up to the end of featurize and at its end, the JVM's, the largest Python worker's).
`--repeats` runs the pair again on a fresh store (medians). A benchmark, not a test: at N = 80,000 it takes
tens of minutes on 2 vCPUs. Last line:
  growth_run_ratio=<second whole run / first whole run>   (goal <= 0.3 at N = 80,000)
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.fit_run import RunMeasurement, job_command, load_runs, measure_job_run, save_runs
from bench.perturbed import write_perturbed
from bench.stage_report import (
    OUTSIDE_STAGES,
    fmt,
    header,
    load_line,
    median_timings,
    ordered_stages,
    per_thousand,
    stage_label,
    top_level_seconds,
)

log = logging.getLogger("bench.growth")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_WEIGHTS = SHARED / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_no_top_rebuilt.h5"
DEFAULT_IMAGES = 2000  # a quick check; the size is N=80000
GOAL_GROWTH_RUN_RATIO = 0.3


def check_counts(run: RunMeasurement, inferred: int, reused: int) -> None:
    got = (run.manifest["images_inferred"], run.manifest["images_reused"], run.manifest["images_rejected"])
    if got != (inferred, reused, 0):
        raise RuntimeError(f"expected (inferred, reused, rejected) = ({inferred}, {reused}, 0), got {got}")


def _move(relative: Sequence[Path], source: Path, dest: Path) -> None:
    """These files from under `source` to the same place under `dest` (renamed: each keeps its identity)."""
    for path in relative:
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).rename(dest / path)


def _median_run(runs: Sequence[RunMeasurement]) -> dict[str, float]:
    timings = median_timings([run.timings_s for run in runs])
    timings[OUTSIDE_STAGES] = statistics.median(r.whole_run_s - top_level_seconds(r.timings_s) for r in runs)
    return timings


def run_growth(args: argparse.Namespace, work: Path) -> dict[str, list[RunMeasurement]]:
    """The runs, by name: first, second (and transform)."""
    added = args.images // 10
    training = sorted(Path(args.sample).glob("Training/*/*.jpg"))
    photos, held_back = work / "photos", work / "added"
    seen: set[bytes] = set()
    log.info("generating %d + %d perturbed photos; %s", args.images, added, load_line())
    write_perturbed(training, photos, 0, args.images, seen=seen)
    added_files = [
        path.relative_to(held_back)
        for path in write_perturbed(training, held_back, args.images, args.images + added, seen=seen)
    ]
    runs: dict[str, list[RunMeasurement]] = {"first": [], "second": []}
    for rep in range(args.repeats):
        store = work / f"store-{rep}"

        def fit(name: str, store: Path = store, rep: int = rep) -> RunMeasurement:
            output = work / f"{name}-{rep}"
            command = job_command(
                "fit",
                "--input",
                photos,
                "--output",
                output,
                "--weights",
                args.weights,
                "--features-store",
                store,
                "--master",
                args.master,
            )
            log.info("repetition %d/%d, %s run; %s", rep + 1, args.repeats, name, load_line())
            return measure_job_run(command, output, work / f"{name}-{rep}.log")

        runs["first"].append(fit("first"))
        check_counts(runs["first"][-1], args.images, 0)
        _move(added_files, held_back, photos)
        runs["second"].append(fit("second"))
        check_counts(runs["second"][-1], added, args.images)
        log.info(
            "whole runs: first %.1f s, second %.1f s",
            runs["first"][-1].whole_run_s,
            runs["second"][-1].whole_run_s,
        )
        if rep + 1 < args.repeats:  # the added photos held back again, the outputs dropped
            _move(added_files, photos, held_back)
            for name in ("first", "second"):
                shutil.rmtree(work / f"{name}-{rep}")
            shutil.rmtree(store)
    if args.transform:
        test = sorted(Path(args.sample).glob("Test/*/*.jpg"))
        test_photos = work / "test-photos"
        write_perturbed(test, test_photos, 0, args.transform)
        output = work / "transform"
        model = work / f"first-{args.repeats - 1}" / "model"
        command = job_command(
            "transform",
            "--model",
            model,
            "--input",
            test_photos,
            "--output",
            output,
            "--weights",
            args.weights,
            "--master",
            args.master,
        )
        log.info("transform of %d photos; %s", args.transform, load_line())
        run = measure_job_run(command, output, work / "transform.log")
        check_counts(run, args.transform, 0)
        runs["transform"] = [run]
    return runs


def growth_run_ratio(runs: dict[str, list[RunMeasurement]]) -> float:
    """The median over repetitions of second whole run / first whole run."""
    return statistics.median(
        two.whole_run_s / one.whole_run_s for one, two in zip(runs["first"], runs["second"], strict=True)
    )


def render(runs: dict[str, list[RunMeasurement]], args: argparse.Namespace) -> str:
    names = list(runs)
    images = {name: runs[name][0].images for name in names}
    timings = {name: _median_run(runs[name]) for name in names}
    stages = [s for s in ordered_stages(timings.values()) if s != OUTSIDE_STAGES] + [OUTSIDE_STAGES]
    columns = " | ".join(f"{name} s | {name} s/1000" for name in names)
    rows = []
    for stage in stages:
        cells = " | ".join(
            f"{fmt(timings[n].get(stage))} | {fmt(per_thousand(timings[n].get(stage), images[n]))}"
            for n in names
        )
        rows.append(f"| {stage_label(stage)} | {cells} |")
    whole = {name: statistics.median(run.whole_run_s for run in runs[name]) for name in names}
    whole_cells = " | ".join(f"{fmt(whole[n])} | {fmt(per_thousand(whole[n], images[n]))}" for n in names)
    peaks = [
        ("Python driver, up to the end of featurize (VmHWM)", "driver_peak_to_featurize_mb"),
        ("Python driver, whole run", "driver_peak_mb"),
        ("JVM (driver and executors, local mode)", "jvm_peak_mb"),
        ("largest Python worker", "worker_peak_mb"),
    ]
    loads = ", ".join(
        f"{name} {run.load_before:.1f}-{run.load_after:.1f}" for name in names for run in runs[name]
    )
    described = {
        name: f"{name}: {images[name]:,} photos, {runs[name][0].manifest['images_inferred']:,} inferred, "
        f"{runs[name][0].manifest['images_reused']:,} from the store"
        for name in names
    }
    lines = [
        *header(
            "growth benchmark (make bench-growth)",
            f"{'; '.join(described.values())}; --master {args.master}, default settings; "
            f"repeats={args.repeats} (medians); load at each run's start-end: {loads}",
        ),
        f"| stage | {columns} |",
        "|---|" + "---:|" * (2 * len(names)),
        *rows,
        f"| **whole run** (start to manifest.json) | {whole_cells} |",
        "",
        "| peak RSS (MB) | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        *[
            f"| {label} | "
            + " | ".join(f"{statistics.median(getattr(r, what) for r in runs[n]):.0f}" for n in names)
            + " |"
            for label, what in peaks
        ],
        "",
        "CPU seconds of the whole run (driver, JVM, Python workers): "
        + ", ".join(f"{n} {statistics.median(r.cpu_s for r in runs[n]):.0f}" for n in names),
        f"goal: growth_run_ratio <= {GOAL_GROWTH_RUN_RATIO} at N = 80,000",
        f"growth_run_ratio={growth_run_ratio(runs):.3f}",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.growth_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--images", type=int, default=DEFAULT_IMAGES, help="N, the first run's photos (default %(default)s)"
    )
    parser.add_argument("--transform", type=int, default=0, help="also transform this many Test photos")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--sample", default=str(SHARED / "data" / "fruits-360-sample"))
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder, removed")
    parser.add_argument("--save", type=Path, default=None, help="also write the measurements to this JSON")
    parser.add_argument("--load", type=Path, default=None, help="print the report of saved measurements")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.images < 10 or args.repeats < 1 or args.transform < 0:
        parser.error("--images must be >= 10, --repeats >= 1, --transform >= 0")
    args.weights = args.weights.resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.load:
        runs = load_runs(args.load)[0]
    elif args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        runs = run_growth(args, args.work_dir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="fruits-bench-growth-") as tmp:
            runs = run_growth(args, Path(tmp))
    if args.save:
        save_runs(args.save, runs)
    sys.stdout.write(render(runs, args) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
