"""`make bench-scale`: the real `fit` at N and 4N photos whose features the store already holds, so nothing is
inferred and the run measures everything after inference (and the listing and the store's lookup).

1. The sample's Training photos are featurized once with the bare LiteRT runner; N and 4N tiny photo files
   and a store holding exactly their features (the real features plus noise, `--classes` classes) are
   written (bench.synthetic_store).
2. `python -m spark_job fit --input <photos> --output <out> --weights <W> --features-store <store>
   --master local[*]` with default settings runs at N, then at 4N (`--repeats` times, alternating), each
   checked to have inferred nothing (bench.fit_run measures the whole run and the peaks).
3. Before each fit, the bare engine (one one-thread LiteRT process per core, bench.bare_engine) is measured
   on copies of the sample's photos: the time it takes to infer 3N photos on this machine, now.

Printed: per stage, the seconds and seconds per 1,000 photos at N and 4N and the marginal seconds per 1,000
photos between them; the two peaks; then the last two lines:
  driver_rss_ratio_4x=<the Python driver's peak up to the end of featurize, at 4N / at N>   (goal <= 1.10)
  post_inference_marginal_share=<(whole run at 4N - whole run at N) / (bare engine time for 3N photos)>
                                                                                            (goal <= 0.10)
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.bare_engine import BareEngineRate, measure_bare_engine
from bench.bare_litert import converted_model
from bench.dataset import replicate
from bench.fit_run import RunMeasurement, job_command, load_runs, measure_job_run, save_runs
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
from bench.synthetic_store import featurize_sample, scale_input
from spark_job.contract.names import DEFAULT_IMAGE_SIZE
from spark_job.driver.weights import sha256_file

log = logging.getLogger("bench.scale")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_WEIGHTS = SHARED / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_no_top_rebuilt.h5"
# Copies of the sample's photos each bare engine process infers: ~10 s of work, so that the processes'
# starts, a second apart at most, overlap.
BARE_ENGINE_IMAGES = 2000
GOAL_DRIVER_RSS_RATIO = 1.10
GOAL_MARGINAL_SHARE = 0.10


@dataclass(frozen=True)
class ScaleResult:
    sizes: tuple[int, int]  # N, 4N
    classes: int
    runs: dict[int, list[RunMeasurement]]  # fit, per size, in the order they ran
    bare: list[BareEngineRate]
    transforms: dict[int, list[RunMeasurement]] = field(default_factory=dict)  # with --transform

    def whole_run(self, size: int, mode: str = "fit") -> float:
        return statistics.median(run.whole_run_s for run in self._of(mode)[size])

    def _of(self, mode: str) -> dict[int, list[RunMeasurement]]:
        return self.runs if mode == "fit" else self.transforms

    def timings(self, size: int, mode: str = "fit") -> dict[str, float]:
        """Per stage, the median seconds; OUTSIDE_STAGES: the whole run's seconds outside every stage."""
        runs = self._of(mode)[size]
        timings = median_timings([run.timings_s for run in runs])
        outside = [run.whole_run_s - top_level_seconds(run.timings_s) for run in runs]
        return {**timings, OUTSIDE_STAGES: statistics.median(outside)}

    def cpu_timings(self, size: int, mode: str = "fit") -> dict[str, float]:
        """Per stage, the median CPU seconds of every process of the run; OUTSIDE_STAGES: the rest of the
        run's CPU seconds."""
        runs = self._of(mode)[size]
        if not all(run.stage_cpu_s for run in runs):
            raise ValueError(f"the {mode} runs at {size} photos have no per-stage CPU seconds")
        timings = median_timings([run.stage_cpu_s for run in runs])
        outside = [run.cpu_s - top_level_seconds(run.stage_cpu_s) for run in runs]
        return {**timings, OUTSIDE_STAGES: statistics.median(outside)}

    def driver_peak(self, size: int) -> float:
        return statistics.median(run.driver_peak_to_featurize_mb for run in self.runs[size])

    def peak(self, size: int, what: str) -> float:
        return statistics.median(getattr(run, what) for run in self.runs[size])

    @property
    def bare_img_s(self) -> float:
        return statistics.median(rate.img_s for rate in self.bare)

    @property
    def bare_seconds_for_added(self) -> float:
        """The bare engine's time to infer the 3N photos the larger run adds."""
        small, large = self.sizes
        return (large - small) / self.bare_img_s

    @property
    def driver_rss_ratio_4x(self) -> float:
        small, large = self.sizes
        return self.driver_peak(large) / self.driver_peak(small)

    @property
    def post_inference_marginal_share(self) -> float:
        small, large = self.sizes
        return (self.whole_run(large) - self.whole_run(small)) / self.bare_seconds_for_added

    def cpu_s(self, size: int) -> float:
        return statistics.median(run.cpu_s for run in self.runs[size])

    @property
    def cpu_marginal_share(self) -> float:
        """The same share in CPU seconds (every process of the run against the bare engine's CPU per photo):
        steadier than wall time on a shared machine."""
        small, large = self.sizes
        bare_cpu = statistics.median(rate.cpu_s_per_image for rate in self.bare)
        return (self.cpu_s(large) - self.cpu_s(small)) / (bare_cpu * (large - small))

    def save(self, path: Path) -> None:
        runs = {
            f"{mode}-{size}": measured
            for mode in ("fit", "transform")
            for size, measured in self._of(mode).items()
        }
        bare = [asdict(rate) for rate in self.bare]
        save_runs(path, runs, sizes=list(self.sizes), classes=self.classes, bare=bare)

    @classmethod
    def load(cls, path: Path) -> ScaleResult:
        runs, doc = load_runs(path)
        small, large = doc["sizes"]
        by_mode: dict[str, dict[int, list[RunMeasurement]]] = {"fit": {}, "transform": {}}
        for name, measured in runs.items():
            mode, size = name.split("-")
            by_mode[mode][int(size)] = measured
        return cls(
            sizes=(small, large),
            classes=doc["classes"],
            runs=by_mode["fit"],
            bare=[BareEngineRate(**rate) for rate in doc["bare"]],
            transforms=by_mode["transform"],
        )


def run_with_store(
    mode: str, photos: Path, store: Path, output: Path, args: argparse.Namespace, *model: str | Path
) -> RunMeasurement:
    """`fit` (or `transform --model <model>`) of `photos` with the store, default settings; checked to have
    inferred none of them."""
    expected = len(list(photos.rglob("*.jpg")))
    command = job_command(
        mode,
        *model,
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
    run = measure_job_run(command, output, output.parent / f"{output.name}.log")
    counts = (run.manifest["images_inferred"], run.manifest["images_reused"])
    if counts != (0, expected):
        raise RuntimeError(f"expected (inferred, reused) = (0, {expected}), got {counts}")
    return run


def run_scale(args: argparse.Namespace, work: Path) -> ScaleResult:
    sizes = (args.images, 4 * args.images)
    model = converted_model(str(args.weights), DEFAULT_IMAGE_SIZE, None)
    training = sorted(Path(args.sample).glob("Training/*/*.jpg"))
    sample = featurize_sample(training, model, DEFAULT_IMAGE_SIZE, args.cores)
    log.info("sample: %d real features in %d classes", len(sample.labels), len(sample.classes))
    weights_sha256 = sha256_file(args.weights)
    inputs = {
        size: scale_input(work / f"n{size}", size, args.classes, sample, weights_sha256, DEFAULT_IMAGE_SIZE)
        for size in sizes
    }
    bare_photos = work / "bare-engine-photos"
    replicate(Path(args.sample), bare_photos, BARE_ENGINE_IMAGES)
    runs: dict[int, list[RunMeasurement]] = {size: [] for size in sizes}
    transforms: dict[int, list[RunMeasurement]] = {size: [] for size in sizes} if args.transform else {}
    bare: list[BareEngineRate] = []
    for rep in range(args.repeats):
        for size in sizes:
            log.info("repetition %d/%d, fit of %d photos; %s", rep + 1, args.repeats, size, load_line())
            bare.append(measure_bare_engine(bare_photos, model, DEFAULT_IMAGE_SIZE, args.cores))
            photos, store = inputs[size]
            output = work / f"fit-{size}-{rep}"
            runs[size].append(run_with_store("fit", photos, store, output, args))
            _log_run(runs[size][-1], size)
        fitted = work / f"fit-{sizes[1]}-{rep}" / "model"
        for size in sizes if args.transform else ():
            log.info("repetition %d/%d, transform of %d photos; %s", rep + 1, args.repeats, size, load_line())
            photos, store = inputs[size]
            output = work / f"transform-{size}-{rep}"
            transforms[size].append(
                run_with_store("transform", photos, store, output, args, "--model", fitted)
            )
            _log_run(transforms[size][-1], size)
            shutil.rmtree(output)
        for size in sizes:
            shutil.rmtree(work / f"fit-{size}-{rep}")  # its features/ is a copy of the store
    return ScaleResult(sizes=sizes, classes=args.classes, runs=runs, bare=bare, transforms=transforms)


def _log_run(run: RunMeasurement, size: int) -> None:
    log.info(
        "%s of %d photos: whole run %.1f s; peaks: driver %.0f MB at featurize's end, JVM %.0f MB",
        run.mode,
        size,
        run.whole_run_s,
        run.driver_peak_to_featurize_mb,
        run.jvm_peak_mb,
    )


def _marginal(a: float | None, b: float | None, added: int) -> str:
    return "–" if a is None or b is None else f"{1000 * (b - a) / added:.3f}"


def stage_table(result: ScaleResult, mode: str) -> list[str]:
    """Per stage: seconds and seconds per 1000 photos at N and 4N, the marginal seconds per 1000, and the
    marginal CPU seconds per 1000 (every process of the run; when measured)."""
    small, large = result.sizes
    t_small, t_large = result.timings(small, mode), result.timings(large, mode)
    try:
        cpu_small, cpu_large = result.cpu_timings(small, mode), result.cpu_timings(large, mode)
    except ValueError:  # measured before bench.fit_run read CPU per stage
        cpu_small = cpu_large = {}
    names = [name for name in ordered_stages([t_small, t_large]) if name != OUTSIDE_STAGES]
    rows = [
        f"| {mode} stage | s at N | s/1000 at N | s at 4N | s/1000 at 4N | marginal s/1000 | "
        "marginal CPU s/1000 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in [*names, OUTSIDE_STAGES]:
        a, b = t_small.get(name), t_large.get(name)
        rows.append(
            f"| {stage_label(name)} | {fmt(a)} | {fmt(per_thousand(a, small))} | {fmt(b)} | "
            f"{fmt(per_thousand(b, large))} | {_marginal(a, b, large - small)} | "
            f"{_marginal(cpu_small.get(name), cpu_large.get(name), large - small)} |"
        )
    whole_small, whole_large = result.whole_run(small, mode), result.whole_run(large, mode)
    cpu_whole_small, cpu_whole_large = (
        statistics.median(run.cpu_s for run in result._of(mode)[size]) for size in result.sizes
    )
    rows.append(
        f"| **whole run** (start to manifest.json) | {fmt(whole_small)} | "
        f"{fmt(per_thousand(whole_small, small))} | {fmt(whole_large)} | "
        f"{fmt(per_thousand(whole_large, large))} | {_marginal(whole_small, whole_large, large - small)} | "
        f"{_marginal(cpu_whole_small, cpu_whole_large, large - small)} |"
    )
    return rows


def render(result: ScaleResult, args: argparse.Namespace) -> str:
    small, large = result.sizes
    bare = result.bare_img_s
    cpu_small, cpu_large = result.cpu_s(small), result.cpu_s(large)
    bare_cpu = statistics.median(rate.cpu_s_per_image for rate in result.bare)
    peaks = [
        ("Python driver, up to the end of featurize (VmHWM)", "driver_peak_to_featurize_mb"),
        ("Python driver, whole run (TensorFlow's export included)", "driver_peak_mb"),
        ("JVM (driver and executors, local mode)", "jvm_peak_mb"),
        ("largest Python worker", "worker_peak_mb"),
    ]
    loads = [f"{r.load_before:.1f}-{r.load_after:.1f}" for size in result.sizes for r in result.runs[size]]
    transforms = ["", *stage_table(result, "transform")] if result.transforms else []
    lines = [
        *header(
            "scale benchmark (make bench-scale)",
            f"N={small:,} and 4N={large:,} tiny photos in {result.classes} classes, every one's features in "
            f"the store (nothing inferred); fit --master {args.master}, default settings; "
            f"repeats={args.repeats} (medians); load at each fit's start-end: {', '.join(loads)}",
        ),
        *stage_table(result, "fit"),
        *transforms,
        "",
        "| peak RSS (MB) | at N | at 4N | 4N / N |",
        "|---|---:|---:|---:|",
        *[
            f"| {label} | {result.peak(small, what):.0f} | {result.peak(large, what):.0f} | "
            f"{result.peak(large, what) / max(result.peak(small, what), 1e-9):.3f} |"
            for label, what in peaks
        ],
        "",
        f"bare engine ({args.cores} one-thread LiteRT processes, sample copies): {bare:.1f} img/s, median of "
        + ", ".join(f"{r.img_s:.1f}" for r in result.bare)
        + f"; {1000 / bare:.2f} s per 1000 photos; 3N = {large - small:,} photos in "
        f"{result.bare_seconds_for_added:.1f} s",
        f"CPU seconds of the whole fit (driver, JVM, Python workers): {cpu_small:.0f} at N, "
        f"{cpu_large:.0f} at 4N: {1000 * (cpu_large - cpu_small) / (large - small):.2f} ms per added photo, "
        f"against the bare engine's {1000 * bare_cpu:.2f} ms of CPU per photo: "
        f"share {result.cpu_marginal_share:.3f}",
        f"goals: driver_rss_ratio_4x <= {GOAL_DRIVER_RSS_RATIO}, "
        f"post_inference_marginal_share <= {GOAL_MARGINAL_SHARE}",
        f"driver_rss_ratio_4x={result.driver_rss_ratio_4x:.3f}",
        f"post_inference_marginal_share={result.post_inference_marginal_share:.3f}",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=int, default=20_000, help="N: fits at N and 4N (default 20,000)")
    parser.add_argument("--classes", type=int, default=42, help="classes of the generated photos")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="bare engine processes")
    parser.add_argument("--repeats", type=int, default=1, help="fits at N and 4N, alternating")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--sample", default=str(SHARED / "data" / "fruits-360-sample"))
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument(
        "--transform",
        action="store_true",
        help="also `transform` the N and the 4N photos with the 4N fit's model (the store holds them all)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder, removed")
    parser.add_argument("--save", type=Path, default=None, help="also write the measurements to this JSON")
    parser.add_argument("--load", type=Path, default=None, help="print the report of saved measurements")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.images < 1 or args.classes < 2 or args.repeats < 1 or args.cores < 1:
        parser.error("--images, --repeats and --cores must be >= 1, --classes >= 2")
    args.weights = args.weights.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    result = ScaleResult.load(args.load) if args.load else measure(args)
    if args.save:
        result.save(args.save)
    sys.stdout.write(render(result, args) + "\n")
    return 0


def measure(args: argparse.Namespace) -> ScaleResult:
    """run_scale in --work-dir (kept) or in a temporary folder (removed)."""
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        return run_scale(args, args.work_dir.resolve())
    with tempfile.TemporaryDirectory(prefix="fruits-bench-scale-") as tmp:
        return run_scale(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
