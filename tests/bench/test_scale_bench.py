"""`make bench-scale`'s output contract: the per-stage table, the peaks, and the two last lines
`driver_rss_ratio_4x=` and `post_inference_marginal_share=` (made-up measurements here; one slow test runs
the benchmark itself on a few hundred photos)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench import scale_bench
from bench.bare_engine import BareEngineRate
from bench.scale_bench import ScaleResult
from bench.stage_report import top_level_seconds
from tests.bench.support import linear_fit_timings, measured_run

REPO = Path(__file__).resolve().parents[2]
LAST_LINES = (r"driver_rss_ratio_4x=\d+\.\d{3}", r"post_inference_marginal_share=-?\d+\.\d{3}")


def result(bare_img_s: tuple[float, ...] = (100.0, 120.0, 110.0)) -> ScaleResult:
    runs = {}
    for images, driver_mb, extra_s in ((1000, 160.0, 0.0), (4000, 168.0, 6.0)):
        timings = linear_fit_timings(images, probe=5.0)
        whole = top_level_seconds(timings) + 6.0 + extra_s
        runs[images] = [measured_run("fit", images, timings, whole_run_s=whole, driver_mb=driver_mb)]
    bare = [BareEngineRate(2, 2000, img_s, 0.005) for img_s in bare_img_s]
    return ScaleResult(sizes=(1000, 4000), classes=42, runs=runs, bare=bare)


def test_the_report_ends_with_the_driver_rss_ratio_then_the_marginal_share(capsys, tmp_path: Path) -> None:
    measured = result()
    saved = tmp_path / "scale.json"
    measured.save(saved)
    assert scale_bench.main(["--load", str(saved), "--images", "1000"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # driver 168 / 160 MB; whole runs differ by the stages' growth; 3,000 photos at the bare engine's
    # median 110 img/s
    growth = measured.whole_run(4000) - measured.whole_run(1000)
    assert lines[-2:] == [
        "driver_rss_ratio_4x=1.050",
        f"post_inference_marginal_share={growth / (3000 / 110.0):.3f}",
    ]


def test_each_stage_has_its_seconds_per_1000_photos_at_n_and_4n_and_the_marginal(capsys, tmp_path):
    saved = tmp_path / "scale.json"
    result().save(saved)
    scale_bench.main(["--load", str(saved)])
    rows = {
        line.split(" | ")[0].removeprefix("| ").strip(): line.split(" | ")[1:]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ")
    }
    # fit_pca: 2 s + 0.2 ms per photo: 2.2 s at 1,000 (2.20 s per 1000), 2.8 s at 4,000 (0.70), 0.200 marginal
    assert rows["fit_pca"] == ["2.20", "2.20", "2.80", "0.70", "0.200", "0.200 |"]  # wall, CPU
    assert rows["store_lookup"][-2:] == ["0.100", "0.100 |"]  # nested in featurize, shown indented
    assert "JVM (driver and executors, local mode)" in rows


def test_saved_measurements_load_back_unchanged(tmp_path: Path):
    measured = result()
    saved = tmp_path / "scale.json"
    measured.save(saved)
    assert ScaleResult.load(saved) == measured


def test_the_benchmark_runs_the_real_fit_on_photos_the_store_holds(weights_path: Path, tmp_path: Path):
    """Slow: two real fits (nothing inferred: the benchmark checks the manifests) and the bare engine."""
    cmd = [sys.executable, "-m", "bench.scale_bench", "--images", "240", "--classes", "12", "--cores", "1"]
    cmd += ["--weights", str(weights_path), "--save", str(tmp_path / "scale.json")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    for pattern, line in zip(LAST_LINES, lines[-2:], strict=True):
        assert re.fullmatch(pattern, line), line
    measured = ScaleResult.load(tmp_path / "scale.json")
    for size in (240, 960):
        (run,) = measured.runs[size]
        assert (run.manifest["images_inferred"], run.manifest["images_reused"]) == (0, size)
        assert run.driver_peak_to_featurize_mb > 0 and run.jvm_peak_mb > 0
        assert len(run.manifest["classes"]) == 12
