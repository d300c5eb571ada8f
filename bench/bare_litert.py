"""Reference: the LiteRT engine alone (read, decode, preprocess, invoke) in one Python process, no Spark.

The bare-engine counterpart of bench.bare_tf, on the same files and command line: batches of
`--batch-size` files go through `LiteRTRunner.featurize`, the very decode and invoke loop the job's
workers run, on an interpreter with `--cores` threads. The model is converted (or found in the cache) by a
child process, so this one never imports TensorFlow; the interpreter is built before the clock starts.

Prints one JSON line: {"images": n, "seconds": s, "img_s": r, "peak_rss_mb": m, ...}.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def converted_model(weights: str, image_size: int, cache_dir: str | None) -> str:
    """The .tflite path, converted by `python -m spark_job.driver.litert_convert` in a child process (no TF
    in this one)."""
    cmd = [
        sys.executable,
        "-m",
        "spark_job.driver.litert_convert",
        "--weights",
        weights,
        "--image-size",
        str(image_size),
    ]
    if cache_dir:
        cmd += ["--cache-dir", cache_dir]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"converting {weights} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["path"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_litert")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--weights", required=True, help="Keras .h5 weights (converted once, cached)")
    parser.add_argument("--model", default=None, help="an already converted .tflite (skips --weights)")
    parser.add_argument("--cache-dir", default=None, help="conversion cache (default: the job's)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cores", type=int, required=True, help="LiteRT threads of the one interpreter")
    parser.add_argument("--batch-size", type=int, default=32, help="files read and decoded per call")
    args = parser.parse_args(argv)

    model = args.model or converted_model(args.weights, args.image_size, args.cache_dir)
    build_start = time.perf_counter()
    from spark_job.workers.litert_runner import LiteRTRunner

    runner = LiteRTRunner(model, args.image_size, args.cores)
    build_seconds = time.perf_counter() - build_start

    files = sorted(p for p in args.dir.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    runner.featurize([files[0].read_bytes()])  # first invoke (XNNPACK's lazy set-up) outside the timing
    start, cpu_start = time.perf_counter(), time.process_time()
    done = 0
    for i in range(0, len(files), args.batch_size):
        features, errors = runner.featurize([p.read_bytes() for p in files[i : i + args.batch_size]])
        if any(errors):
            raise SystemExit(f"undecodable image in {args.dir}: {next(e for e in errors if e)}")
        done += len(features)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    result = {
        "images": done,
        "seconds": seconds,
        "img_s": done / seconds,
        "cpu_seconds": round(cpu_seconds, 3),  # all threads: img/s per busy core, robust to a shared machine
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "import_and_build_s": round(build_seconds, 4),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
