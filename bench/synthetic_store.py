"""A synthetic input for `make bench-scale`: N tiny photo files and a features store that already holds
exactly their features, so a `fit` with that store infers nothing and measures everything else.

- The photos are one 8x8 JPEG written N times under `<photos>/<class>/<n>.jpg` (their content does not
  matter: nothing is decoded).
- The store is written directly with pyarrow in the store's layout (spark_job.driver.store):
  `<store>/<key folder>/_featurizer.json` and `run_id=<id>/part-*.parquet` of about IMAGES_PER_TASK rows,
  each row a listed file's identity (path as Spark spells it, length, modification time), label and
  features.
- The features are the demo's real ones plus noise, so the spectrum and the classes stay realistic: the
  sample's Training photos are featurized once with the bare LiteRT runner; class c of C is real class
  c mod 12 shifted by a fixed per-class offset; each row is a random photo of its real class plus
  Gaussian noise, clipped at 0 (the features are ReLU6 outputs, averaged), float32.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from spark_job.contract.names import FEATURE_DIM
from spark_job.driver.featurize import IMAGES_PER_TASK
from spark_job.driver.store import KEY_RECORD, NETWORK_KEY, RUN_PARTITION, FeaturizerKey

log = logging.getLogger(__name__)

# Per-class offset and per-row noise, in units of each feature's standard deviation over the sample.
CLASS_OFFSET_SCALE = 0.5
ROW_NOISE_SCALE = 0.25
SEED = 25
BENCH_RUN_ID = "bench-scale"


@dataclass(frozen=True)
class SampleFeatures:
    """The real features of the sample's photos: one row per photo, with its class."""

    features: np.ndarray  # (n, FEATURE_DIM) float32
    labels: list[str]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


def featurize_sample(
    photos: Sequence[Path], model_path: str, image_size: int, threads: int
) -> SampleFeatures:
    """The bare LiteRT runner (the workers' decode and invoke loop, no Spark) over `photos`, labelled by
    their folder."""
    from spark_job.workers.litert_runner import LiteRTRunner

    runner = LiteRTRunner(model_path, image_size, threads)
    features, errors = runner.featurize([p.read_bytes() for p in photos])
    if any(errors):
        raise ValueError(f"undecodable sample photo: {next(e for e in errors if e)}")
    return SampleFeatures(features, [p.parent.name for p in photos])


def class_names(real_classes: Sequence[str], n_classes: int) -> list[str]:
    """n_classes folder names: the real names first, then '<real> v<j>' sub-classes, round robin."""
    return [
        real_classes[c % len(real_classes)] + ("" if c < len(real_classes) else f" v{c // len(real_classes)}")
        for c in range(n_classes)
    ]


def tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


@dataclass(frozen=True)
class ListedPhoto:
    """A written photo's identity as the job's listing sees it, and its class."""

    path: str  # `file:` + absolute path
    length: int
    modification_us: int
    label: str


def write_tiny_photos(root: Path, n_images: int, classes: Sequence[str]) -> list[ListedPhoto]:
    """n_images files spread evenly over `classes` (folder per class), in path order."""
    content = tiny_jpeg()
    written: list[ListedPhoto] = []
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(c, n_images, len(classes)):
            path = folder / f"{i:08d}.jpg"
            path.write_bytes(content)
            stat = path.stat()
            uri = f"file:{os.path.abspath(path)}"
            written.append(ListedPhoto(uri, stat.st_size, stat.st_mtime_ns // 1000, name))
    written.sort(key=lambda photo: photo.path)
    return written


class SyntheticFeatures:
    """Rows for photos of `classes`, drawn from the sample's real features (see the module's docstring)."""

    def __init__(self, sample: SampleFeatures, classes: Sequence[str], seed: int = SEED) -> None:
        self._rng = np.random.default_rng(seed)
        self._sample = sample
        real = sample.classes
        self._spread = sample.features.std(axis=0).astype(np.float64) + 1e-6
        self._offsets = {
            name: self._rng.standard_normal(FEATURE_DIM) * CLASS_OFFSET_SCALE * self._spread
            if c >= len(real)
            else np.zeros(FEATURE_DIM)
            for c, name in enumerate(classes)
        }
        labels = np.array(sample.labels)
        self._members = {
            name: np.flatnonzero(labels == real[c % len(real)]) for c, name in enumerate(classes)
        }

    def rows(self, labels: Sequence[str]) -> np.ndarray:
        """One row per label (float32, >= 0), in order."""
        rows = np.empty((len(labels), FEATURE_DIM), dtype=np.float32)
        for i, label in enumerate(labels):
            base = self._sample.features[self._rng.choice(self._members[label])]
            noise = self._rng.standard_normal(FEATURE_DIM) * ROW_NOISE_SCALE * self._spread
            rows[i] = np.clip(base + self._offsets[label] + noise, 0.0, None)
        return rows


STORE_FILE_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("length", pa.int64(), nullable=False),
        pa.field("modification_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("label", pa.string()),
        pa.field("features", pa.list_(pa.float32())),
    ]
)


def write_store(
    store_root: Path, key: FeaturizerKey, photos: Sequence[ListedPhoto], features: SyntheticFeatures
) -> Path:
    """The store's key folder holding exactly `photos`' rows, in files of about IMAGES_PER_TASK rows."""
    key_dir = store_root / key.folder
    run_dir = key_dir / f"{RUN_PARTITION}={BENCH_RUN_ID}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (key_dir / KEY_RECORD).write_text(key.to_json())
    for part, start in enumerate(range(0, len(photos), IMAGES_PER_TASK)):
        chunk = photos[start : start + IMAGES_PER_TASK]
        values = features.rows([p.label for p in chunk])
        offsets = pa.array(np.arange(0, (len(chunk) + 1) * FEATURE_DIM, FEATURE_DIM, dtype=np.int32))
        table = pa.Table.from_arrays(
            [
                pa.array([p.path for p in chunk], pa.string()),
                pa.array([p.length for p in chunk], pa.int64()),
                pa.array([p.modification_us for p in chunk], pa.timestamp("us", tz="UTC")),
                pa.array([p.label for p in chunk], pa.string()),
                pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), pa.float32())),
            ],
            schema=STORE_FILE_SCHEMA,
        )
        pq.write_table(table, run_dir / f"part-{part:05d}-{BENCH_RUN_ID}.snappy.parquet")
    log.info("store %s: %d rows in %d files", key_dir, len(photos), math.ceil(len(photos) / IMAGES_PER_TASK))
    return key_dir


def scale_input(
    root: Path, n_images: int, n_classes: int, sample: SampleFeatures, weights_sha256: str, image_size: int
) -> tuple[Path, Path]:
    """`<root>/photos` (n_images tiny files) and `<root>/store` (their features under the litert key of
    these weights and size): the two paths a `fit --features-store` takes."""
    photos_dir, store_dir = root / "photos", root / "store"
    classes = class_names(sample.classes, n_classes)
    photos = write_tiny_photos(photos_dir, n_images, classes)
    key = FeaturizerKey(NETWORK_KEY, "litert", image_size, weights_sha256)
    write_store(store_dir, key, photos, SyntheticFeatures(sample, classes))
    log.info("%d tiny photos in %d classes under %s (pid %d)", n_images, n_classes, photos_dir, os.getpid())
    return photos_dir, store_dir
