"""``upload DIR``: put a local Fruits-360 folder under the bucket's data prefix, resumably.

An object is skipped when one with the same key, the same size and the same content is already there.
Same content is proven by the ETag when it is the object's MD5 (single-part upload, SSE-S3), otherwise
by the SHA-256 checksum S3 stored at upload time (every upload here sends ``ChecksumSHA256``, which S3
verifies on receipt and returns from ``HeadObject`` with ``ChecksumMode=ENABLED``). Anything else is
uploaded again, so an interrupted upload is resumed by running the same command.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import threading
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ops.aws import Aws
from ops.config import OpsError

log = logging.getLogger(__name__)

MAX_PUT_BYTES = 5 * 1024**3  # S3's limit for a single PutObject
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: Path
    key: str
    size: int


@dataclass(frozen=True)
class RemoteObject:
    size: int
    etag: str
    checksum_algorithms: tuple[str, ...]


@dataclass
class UploadReport:
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, local: LocalFile, uploaded: bool) -> None:
        with self._lock:
            if uploaded:
                self.uploaded += 1
                self.bytes_uploaded += local.size
            else:
                self.skipped += 1


def normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip().lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def scan(directory: Path, prefix: str) -> list[LocalFile]:
    """Every regular file under ``directory`` (hidden files and folders skipped), keyed under ``prefix``."""
    if not directory.is_dir():
        raise OpsError(f"not a directory: {directory}")
    files = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        size = path.stat().st_size
        if size > MAX_PUT_BYTES:
            raise OpsError(f"{path} is larger than 5 GiB, which a single S3 upload cannot take")
        files.append(LocalFile(path=path, key=prefix + rel.as_posix(), size=size))
    return files


def digests(path: Path) -> tuple[str, str]:
    """(MD5 hex, SHA-256 base64) of a file, read once."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), base64.b64encode(sha256.digest()).decode("ascii")


def remote_index(s3: Any, bucket: str, prefix: str) -> dict[str, RemoteObject]:
    index: dict[str, RemoteObject] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            index[obj["Key"]] = RemoteObject(
                size=obj["Size"],
                etag=obj.get("ETag", "").strip('"'),
                checksum_algorithms=tuple(obj.get("ChecksumAlgorithm", [])),
            )
    return index


def already_there(
    s3: Any, bucket: str, local: LocalFile, remote: RemoteObject | None, md5: str, sha256: str
) -> bool:
    if remote is None or remote.size != local.size:
        return False
    if remote.etag == md5:
        return True
    if "SHA256" not in remote.checksum_algorithms:
        return False
    head = s3.head_object(Bucket=bucket, Key=local.key, ChecksumMode="ENABLED")
    return head.get("ChecksumSHA256") == sha256


def _sync_one(s3: Any, bucket: str, local: LocalFile, remote: RemoteObject | None) -> bool:
    """Upload ``local`` unless it is already there; True when it was uploaded."""
    md5, sha256 = digests(local.path)
    if already_there(s3, bucket, local, remote, md5, sha256):
        return False
    content_type = mimetypes.guess_type(local.path.name)[0] or "application/octet-stream"
    with local.path.open("rb") as body:
        s3.put_object(
            Bucket=bucket,
            Key=local.key,
            Body=body,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=sha256,
        )
    return True


def upload(aws: Aws, directory: Path, prefix: str, workers: int = 8) -> UploadReport:
    prefix = normalize_prefix(prefix)
    files = scan(directory, prefix)
    if not files:
        raise OpsError(f"no files to upload under {directory}")
    if prefix.startswith("data") and not {"Training", "Test"} & {p.name for p in directory.iterdir()}:
        log.warning("%s has no Training/ or Test/ folder; the job reads data/Training, data/Test", directory)
    bucket = aws.bucket()
    s3 = aws.s3
    index = remote_index(s3, bucket, prefix)
    log.info("%d files under %s, %d objects already under s3://%s/%s", len(files), directory, len(index),
             bucket, prefix)  # fmt: skip
    report = UploadReport()
    with (
        logging_redirect_tqdm(),
        tqdm(total=len(files), unit="file", desc="upload", disable=None) as bar,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool,
    ):
        futures: dict[Future[bool], LocalFile] = {
            pool.submit(_sync_one, s3, bucket, f, index.get(f.key)): f for f in files
        }
        counted: set[Future[bool]] = set()
        try:
            for fut in as_completed(futures):
                report.add(futures[fut], fut.result())
                counted.add(fut)
                bar.update(1)
                bar.set_postfix(uploaded=report.uploaded, skipped=report.skipped, refresh=False)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            for fut, local in futures.items():
                if fut not in counted and fut.done() and not fut.cancelled() and fut.exception() is None:
                    report.add(local, fut.result())
            log.error(
                "upload interrupted: %d uploaded, %d skipped, %d not done; run the same command to resume",
                report.uploaded, report.skipped, len(files) - report.uploaded - report.skipped,
            )  # fmt: skip
            raise
    return report
