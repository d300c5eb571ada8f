"""Listing and reading the input's files in the Python workers, with pyarrow's file systems.

Nothing here runs on the driver: Spark's file index (and with it a status per file on the driver) is never
built for the input. A path is a qualified URI as Spark spells it (`file:/data/a b.jpg`,
`s3://bucket/key`): the store's identities and the job's outputs keep that spelling.

S3 goes through pyarrow's S3FileSystem with the AWS SDK's default credentials (on EMR, the instance role
through the instance metadata service) in the region of `AWS_REGION` (set by the stacks for every
executor); pyarrow's own region lookup asks the global endpoint, which a subnet without internet access
cannot reach.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from pyarrow import fs

from spark_job.workers.arrow_columns import bools, int64s, strings

# One listed file: its URI, size and modification time; the listing's only schema.
LISTED_FIELDS = [("path", pa.string()), ("length", pa.int64()), ("modification_ms", pa.int64())]
LISTED_SCHEMA = pa.schema(LISTED_FIELDS)
LISTED_DDL = "path string, length long, modification_ms long"
# Reads in flight per Python worker: S3 answers a small GET in tens of milliseconds, a photo's inference
# takes a few, so a batch's photos are fetched together while the previous batch is inferred.
READ_THREADS = 16


@cache
def _local() -> fs.LocalFileSystem:
    """One per worker: made per file, it cost ~2% of a worker's time (py-spy, 8,000 photos, 2026-12-07)."""
    return fs.LocalFileSystem()


@cache
def _s3(region: str | None) -> fs.S3FileSystem:
    return fs.S3FileSystem(region=region) if region else fs.S3FileSystem()


def filesystem(uri: str) -> tuple[fs.FileSystem, str]:
    """pyarrow's file system for a qualified URI, and the path within it."""
    parts = urlsplit(uri)
    if parts.scheme in ("s3", "s3a"):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return _s3(region), f"{parts.netloc}{parts.path}"
    if parts.scheme == "file":
        return _local(), "/" + uri.removeprefix("file:").lstrip("/")
    if parts.scheme == "" and uri.startswith("/"):
        return _local(), uri
    raise ValueError(f"unsupported file system for {uri!r}: local paths, file: and s3:// only")


def _scheme_prefix(uri: str) -> str:
    """What turns pyarrow's paths back into Spark's spelling: `file:` or `s3://`."""
    scheme = urlsplit(uri).scheme
    return "file:" if scheme == "file" else f"{scheme}://"


def is_hidden(relative: str) -> bool:
    """Hadoop's convention, which Spark's file sources follow: a name starting with `_` or `.` is hidden,
    in any folder of the path, and so is a file being copied (`._COPYING_`)."""
    return any(part.startswith(("_", ".")) for part in relative.split("/")) or relative.endswith("._COPYING_")


# The listing's rows: LISTED_SCHEMA, and whether the entry is a folder (listed but not descended into).
ENTRIES_SCHEMA = pa.schema([*LISTED_FIELDS, ("is_folder", pa.bool_())])
ENTRIES_DDL = f"{LISTED_DDL}, is_folder boolean"


def list_entries(root: str | None, folder: str, recursive: bool) -> pa.RecordBatch:
    """The visible files under `folder` (a URI under `root`, whose own names may be hidden; None: the
    folder is its own root), and, when not recursive, its visible subfolders: a batch of ENTRIES_SCHEMA."""
    filesystem_, path = filesystem(folder)
    prefix = _scheme_prefix(folder)
    start = len(filesystem(root or folder)[1].rstrip("/")) + 1
    rows: list[tuple[str, int, int, bool]] = []
    for info in filesystem_.get_file_info(fs.FileSelector(path, recursive=recursive, allow_not_found=True)):
        if is_hidden(info.path[start:]):
            continue
        if info.type == fs.FileType.Directory and not recursive:
            rows.append((prefix + info.path, 0, 0, True))
        elif info.type == fs.FileType.File:
            ms = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else 0
            rows.append((prefix + info.path, info.size, ms, False))
    paths, lengths, times, folders = (
        (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [], [])
    )
    return pa.RecordBatch.from_arrays(
        [strings(paths), int64s(lengths), int64s(times), bools(folders)], schema=ENTRIES_SCHEMA
    )


def listing(
    root: str | None, recursive: bool
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function that lists each row's `folder` (ENTRIES_SCHEMA out)."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for folder in batch.column("folder").to_pylist():
                yield list_entries(root, folder, recursive)

    return run


@cache
def _readers() -> ThreadPoolExecutor:
    """The worker's reading threads, started once and kept across its tasks (not a pool per batch)."""
    return ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="fruits-read")


def read_all(paths: Sequence[str]) -> list[bytes | OSError]:
    """Every file's bytes, READ_THREADS at a time; an OSError in place of a file that cannot be read."""

    def read(uri: str) -> bytes | OSError:
        try:
            filesystem_, path = filesystem(uri)
            with filesystem_.open_input_stream(path) as stream:
                return stream.read()
        except OSError as exc:
            return exc

    return list(_readers().map(read, paths))


def prefetched(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, list[bytes | OSError]]]:
    """Each batch with its files' bytes (its `path` column read), the next batch's read while the caller
    works on this one."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = None
        for batch in batches:
            future = reader.submit(read_all, batch.column("path").to_pylist())
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (batch, future)
        if pending is not None:
            yield pending[0], pending[1].result()


COPIED_DDL = "rows long"


def copied_name(source: str) -> str:
    """The name a store file gets in features/: unique per source (two runs' files may share a name), and
    visible (not `_` or `.`)."""
    return f"part-store-{hashlib.sha256(source.encode()).hexdigest()[:24]}.parquet"


def copy_whole_files(destination: str) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function that copies each row's `file` (a store file whose rows are all wanted) into
    the folder `destination`, on the worker's reading threads, and yields the rows it copied (its `rows`
    column).

    On S3 pyarrow's copy_file is a server-side CopyObject: no byte passes through the executor. The file's
    URI is as Spark's input_file_name() spells it (percent-encoded)."""

    def copy(source: str) -> None:
        source_fs, source_path = filesystem(unquote(source))
        target_fs, target_dir = filesystem(destination)
        if target_fs.type_name != source_fs.type_name:
            raise ValueError(f"cannot copy {source} into {destination}: another file system")
        target_fs.create_dir(target_dir, recursive=True)
        source_fs.copy_file(source_path, f"{target_dir.rstrip('/')}/{copied_name(source)}")

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            list(_readers().map(copy, batch.column("file").to_pylist()))  # raises the first failure
            rows = sum(batch.column("rows").to_pylist())
            yield pa.RecordBatch.from_arrays([int64s([rows])], names=["rows"])

    return run
