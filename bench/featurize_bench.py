"""`make bench`: the job's featurize stage vs the bare engine and bare TensorFlow, same images and cores,
one invocation.

Each measurement runs in its own child process (a fresh Spark session, LiteRT interpreter or TF runtime,
so no warm model carries over), interleaved job / bare engine / bare TF, `--repeats` times; the table
reports medians. The bare LiteRT reference is one process with an interpreter of `--cores` threads.
Modes:
  ratio    (default) last-but-one line `featurize_ratio_vs_bare_engine=<job img/s / bare engine img/s>`,
           last line `featurize_speedup_vs_tf=<job img/s / bare TF img/s>`
  scaling  the job at N and 4N images; last line `scaling_time_ratio_4x=<time(4N) / time(N)>`

It writes no file of the repository: the rates the cost calculator reads are recorded by the deliberate
`make record-rates` (bench/record_rates.py). Growth is judged on whole runs: `make bench-growth`
(bench/growth_bench.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.dataset import replicate
from spark_job.contract.names import ALLOWED_IMAGE_SIZES, DEFAULT_ENGINE, DEFAULT_IMAGE_SIZE, ENGINES

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def measure(module: str, directory: Path, args: argparse.Namespace, *extra: str) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        module,
        "--dir",
        str(directory),
        "--weights",
        args.weights,
        "--image-size",
        str(args.image_size),
        "--cores",
        str(args.cores),
        "--batch-size",
        str(args.batch_size),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log.info(
        "%s: %d images in %.2f s = %.1f img/s", module, result["images"], result["seconds"], result["img_s"]
    )
    return result


BARE_ENGINE = {"litert": "bench.bare_litert", "tensorflow": "bench.bare_tf"}


def run_ratio(args: argparse.Namespace, work: Path) -> str:
    images = work / "images"
    replicate(Path(args.sample), images, args.images)
    job, engine, tf = [], [], []
    for rep in range(args.repeats):
        log.info("repetition %d/%d, load average %.1f", rep + 1, args.repeats, os.getloadavg()[0])
        job.append(measure("bench.spark_featurize", images, args, "--engine", args.engine)["img_s"])
        engine.append(measure(BARE_ENGINE[args.engine], images, args)["img_s"])
        tf.append(
            engine[-1] if args.engine == "tensorflow" else measure("bench.bare_tf", images, args)["img_s"]
        )
    job_med, engine_med, tf_med = statistics.median(job), statistics.median(engine), statistics.median(tf)
    ratio, speedup = job_med / engine_med, job_med / tf_med
    rows = [
        (f"bare {args.engine} (1 process, {args.cores} threads)", engine_med, engine),
        ("bare TF (1 process)", tf_med, tf),
        (f"Spark job featurize ({args.engine})", job_med, job),
    ]
    lines = [
        *header(args),
        f"load average at the end: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} CPUs",
        "",
        "| pipeline | median img/s | runs (img/s) |",
        "|---|---:|---|",
        *[f"| {name} | {med:.1f} | {', '.join(f'{v:.1f}' for v in runs)} |" for name, med, runs in rows],
        f"| ratio job / bare {args.engine} | {ratio:.3f} | |",
        f"| speedup job / bare TF | {speedup:.3f} | |",
        "",
        f"featurize_ratio_vs_bare_engine={ratio:.3f}",
        f"featurize_speedup_vs_tf={speedup:.3f}",
    ]
    return "\n".join(lines)


def run_scaling(args: argparse.Namespace, work: Path) -> str:
    small, large = work / "small", work / "large"
    replicate(Path(args.sample), small, args.images)
    replicate(Path(args.sample), large, 4 * args.images)
    t_small, t_large = [], []
    for rep in range(args.repeats):
        log.info("repetition %d/%d", rep + 1, args.repeats)
        t_small.append(measure("bench.spark_featurize", small, args, "--engine", args.engine)["seconds"])
        t_large.append(measure("bench.spark_featurize", large, args, "--engine", args.engine)["seconds"])
    ratio = statistics.median(t_large) / statistics.median(t_small)
    lines = [
        *header(args),
        "| images | median seconds | runs (s) |",
        "|---:|---:|---|",
        *[
            f"| {n} | {statistics.median(times):.1f} | {', '.join(f'{v:.1f}' for v in times)} |"
            for n, times in ((args.images, t_small), (4 * args.images, t_large))
        ],
        "",
        f"scaling_time_ratio_4x={ratio:.3f}",
    ]
    return "\n".join(lines)


def header(args: argparse.Namespace) -> list[str]:
    return [
        f"# featurize benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}",
        f"cores={args.cores} (machine has {os.cpu_count()}), image_size={args.image_size}, "
        f"images={args.images}, batch_size={args.batch_size}, engine={args.engine}, "
        f"repeats={args.repeats} (medians)",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.featurize_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=("ratio", "scaling"), default="ratio")
    parser.add_argument("--images", type=int, default=8000, help="images, >= 2000 (scaling: N, then 4N)")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, choices=ALLOWED_IMAGE_SIZES)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULT_ENGINE, help="the job's engine")
    parser.add_argument("--sample", default=str(SHARED / "data" / "fruits-360-sample"))
    parser.add_argument(
        "--weights",
        default=str(SHARED / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_no_top_rebuilt.h5"),
    )
    args = parser.parse_args(argv)
    if args.images < 2000 or args.repeats < 1 or args.cores < 1:
        parser.error("--images must be >= 2000, --repeats and --cores >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="fruits-bench-") as tmp:
        modes = {"ratio": run_ratio, "scaling": run_scaling}
        report = modes[args.mode](args, Path(tmp))
    sys.stdout.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
