"""Shared paths: the real Fruits-360 sample and MobileNetV2 weights in ../shared (never copied here)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = SHARED / "data" / "fruits-360-sample"
WEIGHTS = SHARED / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_no_top_rebuilt.h5"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    assert SAMPLE.is_dir(), f"the shared Fruits-360 sample is missing: {SAMPLE}"
    return SAMPLE


@pytest.fixture(scope="session")
def weights_path() -> Path:
    assert WEIGHTS.is_file(), f"the shared MobileNetV2 weights are missing: {WEIGHTS}"
    return WEIGHTS
