"""The benchmarks' generated inputs: bench-scale's store holds exactly the listed tiny photos (path, length
and modification time as the job's listing sees them) in the store's layout; bench-growth's perturbed
copies are distinct, decodable and the same for the same index."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from bench.perturbed import write_perturbed
from bench.synthetic_store import SampleFeatures, class_names, scale_input
from spark_job.contract.names import FEATURE_DIM
from spark_job.driver.featurize import IMAGES_PER_TASK
from spark_job.driver.store import KEY_RECORD, NETWORK_KEY, FeaturizerKey
from spark_job.workers.files import list_entries

SHA = "ab" * 32


def sample_features() -> SampleFeatures:
    rng = np.random.default_rng(0)
    labels = [name for name in ("Banana", "Mango", "Orange") for _ in range(4)]
    return SampleFeatures(rng.uniform(0, 6, (len(labels), FEATURE_DIM)).astype(np.float32), labels)


def test_the_store_holds_exactly_the_listed_photos_in_the_store_layout(tmp_path: Path):
    photos, store = scale_input(tmp_path, 1100, 5, sample_features(), SHA, 224)
    key = FeaturizerKey(NETWORK_KEY, "litert", 224, SHA)
    key_dir = store / key.folder
    assert (key_dir / KEY_RECORD).read_text() == key.to_json()
    files = sorted(key_dir.glob("run_id=*/part-*.parquet"))
    sizes = [pq.read_metadata(f).num_rows for f in files]
    assert sum(sizes) == 1100 and max(sizes) == IMAGES_PER_TASK
    rows = pq.read_table(key_dir).to_pandas()  # run_id: the folder's partition

    listed = []
    for folder in sorted(photos.iterdir()):
        batch = list_entries(f"file:{photos}", f"file:{folder}", True).to_pylist()
        listed += [(e["path"], e["length"], e["modification_ms"] // 1000, folder.name) for e in batch]
    stored = [
        (r.path, r.length, int(r.modification_time.timestamp()), r.label)
        for r in rows.itertuples(index=False)
    ]
    assert sorted(stored) == sorted(listed)
    assert sorted({r.label for r in rows.itertuples()}) == sorted(
        class_names(["Banana", "Mango", "Orange"], 5)
    )
    features = np.stack(rows.features.to_numpy())
    assert features.shape == (1100, FEATURE_DIM) and features.dtype == np.float32 and features.min() >= 0


def test_sub_classes_take_the_real_names_then_numbered_variants():
    assert class_names(["A", "B"], 5) == ["A", "B", "A v1", "B v1", "A v2"]


def test_perturbed_copies_are_distinct_decodable_and_reproducible(tmp_path: Path):
    sources = []
    for name, color in (("Red", (200, 30, 30)), ("Green", (30, 200, 30))):
        (tmp_path / "src" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40), color).save(tmp_path / "src" / name / "a.jpg")
        sources.append(tmp_path / "src" / name / "a.jpg")
    seen: set[bytes] = set()
    written = write_perturbed(sources, tmp_path / "one", 0, 30, seen=seen, processes=1)
    written += write_perturbed(sources, tmp_path / "one", 30, 40, seen=seen, processes=1)
    contents = [path.read_bytes() for path in written]
    assert len({hashlib.sha256(c).digest() for c in contents}) == 40
    assert {path.parent.name for path in written} == {"Red", "Green"}
    assert all(Image.open(io.BytesIO(c)).size == (40, 40) for c in contents)
    again = write_perturbed(sources, tmp_path / "two", 0, 30, processes=1)
    assert [p.read_bytes() for p in again] == contents[:30]
    assert [p.name for p in again] == [p.name for p in written[:30]]
