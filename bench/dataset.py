"""Replicate the shared Fruits-360 sample into a temp folder until it holds at least N images."""

from __future__ import annotations

import shutil
from pathlib import Path


def replicate(sample: Path, dest: Path, n_images: int) -> list[Path]:
    """Copies of sample/{Training,Test}/<Class>/*.jpg as dest/<Class>/<copy>_<name>, exactly n_images."""
    sources = sorted(sample.glob("Training/*/*.jpg")) + sorted(sample.glob("Test/*/*.jpg"))
    if not sources:
        raise FileNotFoundError(f"no images under {sample}")
    written: list[Path] = []
    copy = 0
    while len(written) < n_images:
        for src in sources:
            if len(written) == n_images:
                break
            target = dest / src.parent.name / f"c{copy}_{src.parent.parent.name}_{src.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            written.append(target)
        copy += 1
    return written
