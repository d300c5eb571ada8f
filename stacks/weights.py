"""The MobileNetV2 weights file shipped with the stack, so that no node downloads it from the internet.

With weights=imagenet the deploying machine resolves the file once: either a local file given with
`-c weightsFile=path`, or Keras' own file (the URL keras.applications.MobileNetV2 downloads from, one per
input size) downloaded into build/weights/ with its sha256 recorded beside it (`<file>.sha256`); later
synths reuse it after checking that sha256. The file becomes an S3 asset and the steps get its s3:// URI.
weights=s3://... is used as given. Local runs of the job keep their own `imagenet` download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from spark_job.contract.names import IMAGENET_BASE_URL, imagenet_file_name

log = logging.getLogger(__name__)

CACHE_DIR = "build/weights"
DOWNLOAD_TIMEOUT_S = 120


class WeightsError(RuntimeError):
    """The weights cannot be resolved; the message says what to give instead."""


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    sha256: str
    origin: str  # the URL it was downloaded from, or "local file"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_imagenet(
    image_size: int, *, local_file: Path | None, cache_dir: Path, base_url: str = IMAGENET_BASE_URL
) -> WeightsFile:
    """The weights file to ship for weights=imagenet at `image_size`."""
    if local_file is not None:
        return WeightsFile(path=local_file, sha256=sha256_of(local_file), origin="local file")
    name = imagenet_file_name(image_size)
    url = base_url + name
    target = cache_dir / name
    recorded = target.with_name(name + ".sha256")
    if target.is_file() and recorded.is_file():
        digest = sha256_of(target)
        if digest != recorded.read_text().split()[0]:
            raise WeightsError(
                f"{target} does not match the sha256 recorded when it was downloaded ({recorded}): delete "
                "both files to download it again"
            )
        return WeightsFile(path=target, sha256=digest, origin=url)
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s (once)", url, cache_dir)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        digest = sha256_of(Path(tmp))
        Path(tmp).replace(target)
    except OSError as exc:  # URLError, timeouts, HTTP errors are OSErrors
        Path(tmp).unlink(missing_ok=True)
        raise WeightsError(
            f"could not download the imagenet weights {url}: {exc}. Give a local copy with "
            "-c weightsFile=path/to/weights.h5 (or weights=s3://bucket/key)"
        ) from exc
    recorded.write_text(f"{digest}  {name}\n")
    return WeightsFile(path=target, sha256=digest, origin=url)
