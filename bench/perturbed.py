"""Photos generated from the sample as perturbed copies, so each one is a distinct image the job really
infers.

Copy i of the sources (source i mod len(sources)) is cropped (80-100% of each side, anywhere), flipped half
of the time, brightened or darkened by up to 20%, resized back to the source's size and re-encoded at a
JPEG quality between 70 and 95: all drawn from a generator seeded with i, so the same i gives the same
file. A copy whose bytes equal an earlier one's is drawn again.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

CROP_MIN_SIDE = 0.8
BRIGHTNESS_RANGE = (0.8, 1.2)
QUALITY_RANGE = (70, 95)
# Copies each pool task makes: enough to amortize the task's overhead.
CHUNK = 256


@cache
def _decoded(source: str) -> Image.Image:
    with Image.open(source) as image:
        return image.convert("RGB")


def perturbed_copy(source: Path, seed: int | list[int]) -> bytes:
    """The JPEG bytes of one perturbed copy of `source` (deterministic in `seed`)."""
    rng = np.random.default_rng(seed)
    image = _decoded(str(source))
    width, height = image.size
    crop_w = int(width * rng.uniform(CROP_MIN_SIDE, 1.0))
    crop_h = int(height * rng.uniform(CROP_MIN_SIDE, 1.0))
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    copy = image.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        copy = ImageOps.mirror(copy)
    copy = ImageEnhance.Brightness(copy).enhance(rng.uniform(*BRIGHTNESS_RANGE))
    copy = copy.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    copy.save(buffer, format="JPEG", quality=int(rng.integers(QUALITY_RANGE[0], QUALITY_RANGE[1] + 1)))
    return buffer.getvalue()


def _copies(sources: Sequence[Path], indexes: range) -> list[tuple[int, bytes]]:
    return [(i, perturbed_copy(sources[i % len(sources)], i)) for i in indexes]


def _chunks(start: int, stop: int) -> Iterator[range]:
    for first in range(start, stop, CHUNK):
        yield range(first, min(first + CHUNK, stop))


def target_of(dest: Path, source: Path, index: int) -> Path:
    """dest/<the source's class folder>/p<index>_<source name>."""
    return dest / source.parent.name / f"p{index:07d}_{source.name}"


def write_perturbed(
    sources: Sequence[Path],
    dest: Path,
    start: int,
    stop: int,
    *,
    seen: set[bytes] | None = None,
    processes: int | None = None,
) -> list[Path]:
    """Copies start..stop-1 of `sources` into dest/<class>/, made by `processes` processes (default: one
    per core); every written file's bytes differ from every other's written by this call and from those
    whose sha256 digests are in `seen` (which gets the new ones')."""
    if not sources:
        raise FileNotFoundError("no source photos to copy")
    seen = set() if seen is None else seen
    written: list[Path] = []
    workers = processes or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_copies, sources, indexes) for indexes in _chunks(start, stop)]
        for future in futures:
            for index, content in future.result():
                redraw = 0
                while hashlib.sha256(content).digest() in seen:
                    redraw += 1
                    content = perturbed_copy(sources[index % len(sources)], [index, redraw])
                seen.add(hashlib.sha256(content).digest())
                target = target_of(dest, sources[index % len(sources)], index)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                written.append(target)
    return written
