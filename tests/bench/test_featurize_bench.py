"""`make bench`'s report: the medians it compares and the two lines it ends with, and no file of the
repository written (the measurements are stubbed; the benchmark itself runs with `make bench`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bench import featurize_bench

REPO = Path(__file__).resolve().parents[2]


def committed_data() -> dict[Path, bytes]:
    """ops/data/'s files, which the cost calculator reads: what a benchmark must not rewrite."""
    return {path: path.read_bytes() for path in sorted((REPO / "ops" / "data").iterdir())}


RATES = {  # img/s each child process reports, in the order of the repetitions; means != medians
    "bench.spark_featurize": [460.0, 470.0, 300.0],
    "bench.bare_litert": [430.0, 420.0, 500.0],
    "bench.bare_tf": [210.0, 260.0, 215.0],
}


def test_ratio_report_ends_with_the_ratio_then_the_speedup_of_the_medians(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "sample"
    for name in ("Red", "Green"):
        (sample / "Training" / name).mkdir(parents=True)
        Image.new("RGB", (4, 4), (200, 0, 0)).save(sample / "Training" / name / "a.jpg")
    calls: list[str] = []

    def measure(module: str, directory: Path, args: object, *extra: str) -> dict[str, float]:
        assert len(list(directory.rglob("*.jpg"))) == 2000  # the same images for every measurement
        calls.append(module)
        return {"images": 2000, "seconds": 1.0, "img_s": RATES[module][calls.count(module) - 1]}

    monkeypatch.setattr(featurize_bench, "measure", measure)
    before = committed_data()
    argv = ["--images", "2000", "--repeats", "3", "--sample", str(sample), "--weights", "w.h5"]
    assert featurize_bench.main(argv) == 0

    lines = capsys.readouterr().out.strip().splitlines()
    # medians: job 460, bare LiteRT 430, bare TF 215
    assert lines[-2:] == ["featurize_ratio_vs_bare_engine=1.070", "featurize_speedup_vs_tf=2.140"]
    assert calls == ["bench.spark_featurize", "bench.bare_litert", "bench.bare_tf"] * 3  # interleaved
    assert committed_data() == before  # the cost model changes only with `make record-rates`
