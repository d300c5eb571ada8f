"""What the scale and growth benchmarks print: the job's stages in run order, the machine and its load."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from bench.throughput_record import machine_description

# The stages of `fit` and `transform` as the manifest's timings_s names them, in run order. Indented names
# run inside the one above them (featurize holds the store's three; write_model holds the export).
STAGES: tuple[tuple[str, str | None], ...] = (
    ("weights", None),
    ("convert", None),
    ("list", None),
    ("featurize", None),
    ("store_lookup", "featurize"),
    ("store_infer", "featurize"),
    ("store_assemble", "featurize"),
    ("fit_pca", None),
    ("project", None),
    ("probe", None),
    ("write_model", None),
    ("export_classifier", "write_model"),
    ("report", None),
)
PARENT = dict(STAGES)
# What the whole run holds besides its stages: the Spark session's start, the manifest (and, after the
# manifest, the session's stop, which the whole run leaves out).
OUTSIDE_STAGES = "outside stages"


def ordered_stages(timings: Iterable[Mapping[str, float]]) -> list[str]:
    """Every stage name in any of `timings`, in run order (unknown names last, sorted)."""
    names = set().union(*(t.keys() for t in timings))
    known = [name for name, _ in STAGES if name in names]
    return known + sorted(names - set(known))


def top_level_seconds(timings: Mapping[str, float]) -> float:
    """The stages' seconds, each counted once (nested stages are inside their parent's)."""
    return sum(seconds for name, seconds in timings.items() if PARENT.get(name) is None)


def stage_label(name: str) -> str:
    return f"  {name}" if PARENT.get(name) else name


def median_timings(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per stage, the median over the runs that have it."""
    return {
        name: statistics.median(run[name] for run in runs if name in run) for name in ordered_stages(runs)
    }


def per_thousand(seconds: float | None, images: int) -> float | None:
    return None if seconds is None else 1000 * seconds / images


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} (1, 5, 15 min) on {os.cpu_count()} vCPUs"


def header(title: str, settings: str) -> list[str]:
    return [
        f"# {title}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine_description()} ({platform.machine()}); {load_line()}",
        settings,
        "",
    ]


def fmt(value: float | None) -> str:
    """Seconds (or seconds per 1000 photos) for a table; a dash for a stage the run did not have."""
    if value is None:
        return "–"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"
