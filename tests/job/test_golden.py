"""Golden test: the Spark features equal bare Keras on the same decoded, resized, preprocessed image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from spark_job.workers.decode import decode_image
from spark_job.workers.network import build_network, preprocess


def test_spark_features_match_bare_keras(fit_run: Path, weights_path: Path) -> None:
    features = pd.read_parquet(fit_run / "features").sort_values("path")
    picks = features.groupby("label").head(1)  # one image per class
    network = build_network(str(weights_path), 224)
    batch = np.stack([decode_image(Path(p.removeprefix("file:")).read_bytes(), 224) for p in picks["path"]])
    expected = network.predict(preprocess(batch), verbose=0)
    got = np.stack(picks["features"].to_numpy())
    assert got.shape == expected.shape == (12, 1280)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(expected).max() > 0.1  # real activations, not zeros


def test_decode_converts_to_rgb_and_resizes(tmp_path: Path) -> None:
    from PIL import Image

    gray = tmp_path / "g.png"
    Image.new("L", (50, 30), color=128).save(gray)
    arr = decode_image(gray.read_bytes(), 96)
    assert arr.shape == (96, 96, 3) and arr.dtype == np.float32
    assert np.allclose(arr, 128.0)
