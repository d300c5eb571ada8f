"""Growth with the real MobileNetV2 (slow tier): fit the sample's Training with a features store, add photos,
fit again. The second run infers only the added photos, and its features/, spectrum and k equal those of a
run without the store on the same input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tests.job_support import read_manifest, run_cli

ADDED_PER_CLASS = 4


def _features(run: Path) -> pd.DataFrame:
    df = pd.read_parquet(run / "features").sort_values("path").reset_index(drop=True)
    assert not df.path.duplicated().any()
    return df


def test_a_second_run_infers_only_the_added_photos_and_equals_a_run_from_scratch(
    spark, sample_dir: Path, weights_path: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(sample_dir / "Training", photos)
    store = tmp_path / "features-store"

    def fit(name: str, *extra: object) -> dict:
        out = tmp_path / name
        args = ["fit", "--input", photos, "--output", out, "--weights", weights_path, *extra]
        assert run_cli(spark, *args) == 0
        return read_manifest(out)

    first = fit("first", "--features-store", store)
    assert (first["images_inferred"], first["images_reused"]) == (440, 0)

    added = 0
    for class_dir in sorted((sample_dir / "Test").iterdir()):
        for src in sorted(class_dir.glob("*.jpg"))[:ADDED_PER_CLASS]:
            shutil.copyfile(src, photos / class_dir.name / f"new_{src.name}")
            added += 1
    second = fit("second", "--features-store", store)
    assert (second["images_inferred"], second["images_reused"]) == (added, 440)
    assert second["images_featurized"] == second["images_reused"] + second["images_inferred"] == 440 + added
    assert second["images_discovered"] == second["images_featurized"] + second["images_rejected"]
    assert second["features_store"].startswith(str(store)) and second["store_run_id"]

    scratch = fit("scratch")
    assert scratch["images_inferred"] == 440 + added and scratch["images_reused"] == 0
    with_store, without = _features(tmp_path / "second"), _features(tmp_path / "scratch")
    assert list(with_store.path) == list(without.path) and list(with_store.label) == list(without.label)
    np.testing.assert_allclose(np.stack(with_store.features), np.stack(without.features), atol=1e-6, rtol=0)
    assert second["k"] == scratch["k"]
    spectra = [
        json.loads((tmp_path / run / "model" / "featurizer.json").read_text())["spectrum"]
        for run in ("second", "scratch")
    ]
    np.testing.assert_allclose(spectra[0], spectra[1], rtol=1e-6, atol=1e-9)
