"""The MobileNetV2 weights of a run, resolved on the driver: `imagenet`, a local file or a URI -> a local
file and its sha256, shipped to the workers (or converted first, spark_job.driver.litert_convert)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark_job.contract.errors import JobInputError
from spark_job.contract.names import IMAGENET_BASE_URL, imagenet_file_name
from spark_job.contract.records import WeightsRecord
from spark_job.workers.network import build_network

if TYPE_CHECKING:
    from spark_job.driver.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedWeights:
    source: str  # what the user asked for: imagenet, a path or a URI
    local_path: str  # a file on the driver, shipped to executors with SparkContext.addFile
    sha256: str

    @property
    def file_name(self) -> str:
        return Path(self.local_path).name

    def as_record(self) -> WeightsRecord:
        return WeightsRecord(source=self.source, sha256=self.sha256, file=self.file_name)


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def resolve_weights(
    source: str, image_size: int, storage: Storage, workdir: str, *, check: bool = True
) -> ResolvedWeights:
    """Turn `imagenet`, a local path or a URI into a local file on the driver (downloaded once).

    check: build the network from it here, so a bad file fails before any distributed work. The litert
    engine passes False: its conversion loads the weights the same way (load_network) when it is not
    cached, and a cached conversion of the same sha256 proves them good.
    """
    if source == "imagenet":
        from keras.utils import get_file

        name = imagenet_file_name(image_size)
        try:
            local = get_file(name, IMAGENET_BASE_URL + name, cache_dir=workdir, cache_subdir="weights")
        except Exception as exc:  # network errors come in many types (URLError, HTTPError, OSError)
            raise JobInputError(f"could not download the imagenet weights {name}: {exc}") from exc
    elif "://" in source and not source.startswith("file:"):
        local = str(Path(workdir) / Path(source).name)
        try:
            storage.download(source, local)
        except Exception as exc:  # py4j wraps the Hadoop IOException
            raise JobInputError(f"could not read the weights at {source}: {exc}") from exc
    else:
        local = source.removeprefix("file:")
        if not Path(local).is_file():
            raise JobInputError(f"weights file not found: {source}")
    weights = ResolvedWeights(source=source, local_path=str(local), sha256=sha256_file(local))
    if check:
        load_network(weights.local_path, image_size)
    return weights


def load_network(weights_path: str, image_size: int) -> Any:
    """build_network on the driver, failing with an input error (exit 2) when the file is not MobileNetV2
    no-top weights."""
    try:
        return build_network(weights_path, image_size)
    except Exception as exc:  # h5py/keras raise OSError, ValueError, KeyError... for a bad file
        raise JobInputError(f"unreadable weights {weights_path}: {type(exc).__name__}: {exc}") from exc
