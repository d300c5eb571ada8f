"""`make bench-growth`'s output contract: both runs' stages and the transform's, the peaks, and the last line
`growth_run_ratio=` of the whole runs (made-up measurements here; one slow test runs the benchmark itself on
a few dozen photos)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench import growth_bench
from bench.fit_run import save_runs
from bench.stage_report import top_level_seconds
from tests.bench.support import linear_fit_timings, measured_run

REPO = Path(__file__).resolve().parents[2]


def runs() -> dict:
    first = linear_fit_timings(1000, probe=5.0)
    second = linear_fit_timings(1100, probe=5.0)
    transform = {"weights": 0.1, "convert": 0.2, "list": 1.0, "featurize": 9.0, "project": 1.0, "probe": 2.0}
    return {
        "first": [measured_run("fit", 1000, first, whole_run_s=100.0, inferred=1000)],
        "second": [measured_run("fit", 1100, second, whole_run_s=25.0, inferred=100)],
        "transform": [
            measured_run(
                "transform", 500, transform, whole_run_s=top_level_seconds(transform) + 5, inferred=500
            )
        ],
    }


def test_the_report_ends_with_the_ratio_of_the_whole_runs(capsys, tmp_path: Path) -> None:
    saved = tmp_path / "growth.json"
    save_runs(saved, runs())
    assert growth_bench.main(["--load", str(saved)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "growth_run_ratio=0.250"  # 25 s / 100 s
    table = {line.split(" | ")[0].removeprefix("| ").strip(): line for line in out if line.startswith("| ")}
    assert table["stage"].startswith(
        "| stage | first s | first s/1000 | second s | second s/1000 | transform s"
    )
    assert table["fit_pca"].endswith("| – | – |")  # transform fits no PCA
    assert "**whole run** (start to manifest.json)" in table
    assert "Python driver, up to the end of featurize (VmHWM)" in table


def test_the_benchmark_grows_a_collection_by_a_tenth_and_transforms(weights_path: Path, tmp_path: Path):
    """Slow: three real runs (the benchmark checks that the second infers only the added photos)."""
    cmd = [sys.executable, "-m", "bench.growth_bench", "--images", "40", "--transform", "12"]
    cmd += ["--weights", str(weights_path), "--save", str(tmp_path / "growth.json")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.fullmatch(r"growth_run_ratio=\d+\.\d{3}", done.stdout.strip().splitlines()[-1])
    measured, _ = growth_bench.load_runs(tmp_path / "growth.json")
    counts = {
        name: (r[0].manifest["images_inferred"], r[0].manifest["images_reused"])
        for name, r in measured.items()
    }
    assert counts == {"first": (40, 0), "second": (4, 40), "transform": (12, 0)}
