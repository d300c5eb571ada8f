"""The bare engine's rate on this machine, measured in the same invocation as a benchmark's runs.

The job's shape: one Python process per core, each a one-thread LiteRT interpreter (spark.task.cpus = 1),
all running at once. Each process is `python -m bench.bare_litert --cores 1` over the same photos (the
interpreter built and its first invoke made before its clock starts); the rate is the sum of theirs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BareEngineRate:
    processes: int
    images_per_process: int
    img_s: float  # all processes together
    cpu_s_per_image: float  # CPU seconds per photo (all threads), from the processes' own clocks

    def seconds_for(self, images: int) -> float:
        return images / self.img_s


def measure_bare_engine(photos: Path, model_path: str, image_size: int, processes: int) -> BareEngineRate:
    """`processes` concurrent bare LiteRT processes of one thread each over `photos`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "bench.bare_litert",
        "--dir",
        str(photos),
        "--weights",
        "unused.h5",
        "--model",
        model_path,
        "--image-size",
        str(image_size),
        "--cores",
        "1",
    ]
    running = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    results = []
    for process in running:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"bench.bare_litert failed ({process.returncode}):\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    rate = BareEngineRate(
        processes=processes,
        images_per_process=int(results[0]["images"]),
        img_s=round(sum(r["img_s"] for r in results), 2),
        cpu_s_per_image=round(sum(r["cpu_seconds"] for r in results) / sum(r["images"] for r in results), 6),
    )
    log.info(
        "bare engine: %d processes x %d photos, %.1f img/s together, %.2f ms CPU per photo",
        processes,
        rate.images_per_process,
        rate.img_s,
        1000 * rate.cpu_s_per_image,
    )
    return rate
