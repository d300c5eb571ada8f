"""A tiny engine for plumbing tests: no TensorFlow, features that say which image they came from.

Importable by the Python workers (they run from the repository root), so the spec pickles by reference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from spark_job.contract.names import FEATURE_DIM
from spark_job.workers.engines import Errors, featurize_decoded


@dataclass(frozen=True)
class FakeEngineSpec:
    name: ClassVar[str] = "fake"
    image_size: int = 8

    def build(self) -> FakeEngine:
        return FakeEngine()


class FakeEngine:
    """features[:3] = the image's mean R, G, B; features[3] = the worker's pid; the rest zeros."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def featurize(self, contents: Sequence[bytes | None]) -> tuple[np.ndarray, Errors]:
        return featurize_decoded(contents, 8, self.features)

    def features(self, images: np.ndarray) -> np.ndarray:
        out = np.zeros((len(images), FEATURE_DIM), dtype=np.float32)
        out[:, :3] = images.mean(axis=(1, 2))
        out[:, 3] = self.pid
        return out


@dataclass(frozen=True)
class KillingEngineSpec:
    """The fake engine under the same featurizer key, except that a batch holding a pure blue image fails
    its task: a run that dies in the middle of featurizing (tests/job/test_features_store.py)."""

    image_size: int = 8
    name: ClassVar[str] = "fake"

    def build(self) -> KillingEngine:
        return KillingEngine()


class KillingEngine(FakeEngine):
    def features(self, images: np.ndarray) -> np.ndarray:
        means = images.mean(axis=(1, 2))
        if ((means[:, 2] > 200) & (means[:, 0] < 50) & (means[:, 1] < 50)).any():
            raise RuntimeError("killed: the run dies while featurizing")
        return super().features(images)


@dataclass(frozen=True)
class DyingEngineSpec:
    """The fake engine, except that the Python worker that meets its second batch of a first task attempt
    exits at once, once (the marker file records it, with the rows that attempt had already featurized): a
    worker's death in the middle of a task (tests/job/test_fault.py)."""

    marker: str
    image_size: int = 8
    name: ClassVar[str] = "fake"

    def build(self) -> DyingEngine:
        return DyingEngine(self.marker)


class DyingEngine(FakeEngine):
    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = Path(marker)
        self.rows: dict[tuple[int, int, int], int] = {}  # (stage, partition, attempt) -> rows featurized

    def featurize(self, contents: Sequence[bytes | None]) -> tuple[np.ndarray, Errors]:
        from pyspark import TaskContext

        task = TaskContext.get()
        attempt = (task.stageId(), task.partitionId(), task.attemptNumber()) if task else (-1, -1, -1)
        before = self.rows.get(attempt, 0)
        if attempt[2] == 0 and before and not self.marker.exists():
            self.marker.write_text(json.dumps({"pid": os.getpid(), "rows_featurized_before": before}))
            os._exit(17)
        self.rows[attempt] = before + len(contents)
        return super().featurize(contents)


@dataclass(frozen=True)
class ByteCountEngineSpec:
    """An engine that decodes nothing: features[0] is the file's size in bytes, the rest zeros. For runs
    over many tiny files, where only the plumbing is measured (tests/job/test_driver_memory.py)."""

    image_size: int = 8
    name: ClassVar[str] = "fake"

    def build(self) -> ByteCountEngine:
        return ByteCountEngine()


class ByteCountEngine:
    def featurize(self, contents: Sequence[bytes | None]) -> tuple[np.ndarray, Errors]:
        out = np.zeros((len(contents), FEATURE_DIM), dtype=np.float32)
        out[:, 0] = [len(c or b"") for c in contents]
        return out, [None if c else ValueError("empty image data") for c in contents]
