"""bench.fit_run measures a job run from outside: the whole run up to its manifest.json, the driver's peak
when its log says the featurize stage is done, and a failure with the log's tail (a stand-in job here)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from bench.fit_run import RunFailedError, descendants, measure_job_run, vm_hwm_mb

FAKE_JOB = """
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
sys.stderr.write("INFO stage list: done in 0.1 s\\n")
sys.stderr.write("INFO stage featurize: started\\n")
sum(i * i for i in range(2_000_000))  # some CPU inside the stage
sys.stderr.write("INFO stage featurize: done in 1.0 s\\n")
if sys.argv[2] == "fail":
    sys.stderr.write("java.lang.OutOfMemoryError: Java heap space\\n")
    sys.exit(1)
out.mkdir(parents=True)
manifest = {"mode": "fit", "images_featurized": 3, "timings_s": {"list": 0.1, "featurize": 1.0}}
(out / "manifest.json").write_text(json.dumps(manifest))
"""


def fake_job(tmp_path: Path, outcome: str) -> list[str]:
    script = tmp_path / "fake_job.py"
    script.write_text(textwrap.dedent(FAKE_JOB))
    return [sys.executable, str(script), str(tmp_path / "out"), outcome]


def test_a_run_is_timed_to_its_manifest_with_the_driver_s_peak_at_featurize(tmp_path: Path):
    run = measure_job_run(fake_job(tmp_path, "ok"), tmp_path / "out", tmp_path / "job.log")
    assert run.mode == "fit" and run.images == 3
    assert run.timings_s == {"list": 0.1, "featurize": 1.0}
    assert (
        0 < run.whole_run_s <= run.process_s + 1
    )  # the manifest's time has whole seconds on some file systems
    assert run.driver_peak_to_featurize_mb > 0
    assert 0 < run.stage_cpu_s["featurize"] <= run.cpu_s  # CPU seconds between its started and done lines
    assert "stage featurize: done" in (tmp_path / "job.log").read_text()
    assert json.loads(json.dumps(run.manifest)) == run.manifest


def test_a_failed_run_raises_with_the_tail_of_its_log(tmp_path: Path):
    with pytest.raises(RunFailedError, match="OutOfMemoryError"):
        measure_job_run(fake_job(tmp_path, "fail"), tmp_path / "out", tmp_path / "job.log")


def test_this_process_peak_and_descendants_come_from_proc():
    assert vm_hwm_mb(1 << 30) is None  # no such process
    peak = vm_hwm_mb(os.getpid())
    assert peak is not None and peak > 10
    assert os.getpid() not in descendants(os.getpid())
