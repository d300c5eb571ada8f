"""A tiny engine for plumbing tests: no TensorFlow, features that say which image they came from.

Importable by the Python workers (they run from the repository root), so the spec pickles by reference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from spark_job.engine import Errors, featurize_decoded
from spark_job.names import FEATURE_DIM


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
