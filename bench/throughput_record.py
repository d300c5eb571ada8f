"""The measured featurize throughput the cost calculator reads (ops/data/throughput.json), and its origin.

`make bench` writes it (bench/featurize_bench.py, one call) from the job's own featurize stage; the
calculator (`python -m ops cost`) scales it by the cluster's executor vCPUs. Committed, so that an estimate
names the measurement it rests on: date, machine, engine, image size, images and cores.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

THROUGHPUT_FILE = Path(__file__).resolve().parent.parent / "ops" / "data" / "throughput.json"


@dataclass(frozen=True)
class ThroughputRecord:
    images_per_second_per_vcpu: float
    engine: str  # the featurize engine measured (e.g. tensorflow)
    image_size: int
    images: int
    vcpus: int
    date: str  # ISO 8601, UTC
    machine: str  # CPU model and platform of the measuring machine
    source: str  # what produced the numbers

    @classmethod
    def read(cls, path: Path = THROUGHPUT_FILE) -> ThroughputRecord:
        return cls(**json.loads(path.read_text()))


def machine_description() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPUs {platform.machine()} {model}".strip()


def write_throughput(
    images_per_second: float,
    *,
    vcpus: int,
    images: int,
    image_size: int,
    engine: str,
    source: str,
    path: Path = THROUGHPUT_FILE,
) -> ThroughputRecord:
    """Record a measurement of the job's featurize stage (`images_per_second` on `vcpus` cores)."""
    record = ThroughputRecord(
        images_per_second_per_vcpu=round(images_per_second / vcpus, 2),
        engine=engine,
        image_size=image_size,
        images=images,
        vcpus=vcpus,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ"),
        machine=machine_description(),
        source=source,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(record), indent=2) + "\n")
    return record
