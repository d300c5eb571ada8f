"""A Python worker that dies in the middle of a task: Spark retries the task, and the run stays exact.

What `images_inferred` counts: images inferred by task attempts that succeeded (Spark merges a task's
accumulator updates only when the attempt succeeds; a worker that exits sends none). So after a retry it
still equals the rows in features/, and the killed attempt's work is not in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # a Spark session of its own in a subprocess: ~30 s

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 40


def test_a_worker_dying_mid_task_is_retried_with_exact_counts(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    for i in range(N_IMAGES):
        folder = photos / ("Red" if i % 2 else "Green")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 24), (i * 6, 100, 50)).save(folder / f"img{i:02d}.jpg")
    marker = tmp_path / "worker-exited"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.job.fault_run",
            str(photos),
            str(tmp_path / "out"),
            str(marker),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])

    # A worker really exited in the middle of a task: that attempt had featurized (and counted in its
    # accumulator copy) a batch before, which the retry featurizes again.
    exited = json.loads(marker.read_text())
    assert exited["pid"] > 0 and exited["rows_featurized_before"] > 0
    assert counts == {"images": N_IMAGES, "features": N_IMAGES, "inferred": N_IMAGES, "rejected": 0}
    features = pd.read_parquet(tmp_path / "out" / "features")
    assert len(features) == N_IMAGES and features["path"].is_unique  # no row from the killed attempt
    assert sorted(Path(p).name for p in features["path"]) == [f"img{i:02d}.jpg" for i in range(N_IMAGES)]
