"""`make bench-predict`: the app's model through `python -m spark_job predict`, on one core.

Two numbers, each from the same model folder and photos:
  first answer   wall time from starting `python -m spark_job predict --model M PHOTOS` (a fresh process:
                 interpreter start, imports, loading the model) to its first line on stdout; median of
                 `--repeats` starts, pinned to one CPU (taskset semantics via os.sched_setaffinity).
  per photo      steady latency of one photo in-process, on one core with one LiteRT thread: read the file,
                 decode, resize to 224 bilinear, invoke, read both outputs (Classifier.predict, what the
                 command runs per photo); after a warm-up, median over `--photos` calls.
Goals (issue #12): first answer < 2 s, per photo < 10 ms at 224 px. Last line `predict_ms_per_photo=<x>`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIRST_ANSWER_GOAL_S = 2.0
PER_PHOTO_GOAL_MS = 10.0


def first_answer_seconds(model: Path, photos: Path, cpu: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "spark_job", "predict", "--model", str(model), str(photos)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    elapsed = time.perf_counter() - start
    process.kill()
    process.wait()
    if not line:
        raise SystemExit(f"predict gave no answer (exit {process.returncode})")
    return elapsed


def per_photo_ms(model: Path, photos: list[Path], count: int, cpu: int) -> tuple[float, float, float, float]:
    """(median, p90 of the full per-photo path, its CPU time per photo, median of invoke alone), ms. The CPU
    time (thread_time) is what contention from other processes inflates least."""
    from spark_job.app.predict import Classifier
    from spark_job.workers.decode import decode_image

    os.sched_setaffinity(0, {cpu})
    classifier = Classifier(str(model), threads=1)
    for photo in photos[:20]:  # warm-up: XNNPACK's first invokes, the page cache
        classifier.predict(photo, top=3)
    times = []
    cpu_start = time.thread_time()
    for i in range(count):
        start = time.perf_counter()
        classifier.predict(photos[i % len(photos)], top=3)
        times.append(time.perf_counter() - start)
    cpu_ms = 1000 * (time.thread_time() - cpu_start) / count
    pixels = decode_image(photos[0].read_bytes(), classifier.image_size)
    invokes = []
    for _ in range(min(count, 200)):
        start = time.perf_counter()
        classifier.classify(pixels)
        invokes.append(time.perf_counter() - start)
    times.sort()
    return (
        1000 * statistics.median(times),
        1000 * times[int(0.9 * len(times))],
        cpu_ms,
        1000 * statistics.median(invokes),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predict_bench", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a model folder with classifier.tflite")
    parser.add_argument("--photos", type=Path, required=True, help="a folder of JPEG/PNG photos")
    parser.add_argument("--count", type=int, default=500, help="photos timed for the steady latency")
    parser.add_argument("--repeats", type=int, default=5, help="fresh `predict` processes timed")
    parser.add_argument("--cpu", type=int, default=None, help="the CPU to pin to (default: the last one)")
    args = parser.parse_args(argv)
    from spark_job.app.predict import photo_paths

    photos = photo_paths([str(args.photos)])
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}, pinned to CPU {cpu}; {len(photos)} photos under {args.photos}"
    )
    starts = [first_answer_seconds(args.model, args.photos, cpu) for _ in range(args.repeats)]
    median_ms, p90_ms, cpu_ms, invoke_ms = per_photo_ms(args.model, photos, args.count, cpu)
    first = statistics.median(starts)
    print(
        f"first answer: median {first:.2f} s, min {min(starts):.2f}, max {max(starts):.2f} "
        f"({args.repeats} fresh processes; goal < {FIRST_ANSWER_GOAL_S:.0f} s)"
    )
    print(
        f"per photo (read, decode, resize, invoke): median {median_ms:.2f} ms, p90 {p90_ms:.2f} ms, "
        f"CPU {cpu_ms:.2f} ms; "
        f"invoke alone {invoke_ms:.2f} ms ({args.count} photos, 1 thread; goal < {PER_PHOTO_GOAL_MS:.0f} ms)"
    )
    print(f"first_answer_s={first:.3f}")
    print(f"predict_ms_per_photo={median_ms:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
