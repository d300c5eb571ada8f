"""Small file operations on local paths and s3:// URIs through Spark's Hadoop FileSystem.

Going through Hadoop (EMRFS on EMR, the local FS elsewhere) means one code path for both, with no boto3 in
the job and the cluster's own credentials.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from spark_job.shims import pyspark_private


def _is_local(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("file:")


def normalize(uri: str) -> str:
    """Absolute local path (so Spark and Hadoop agree on it) or the URI unchanged, without trailing /."""
    if _is_local(uri):
        return os.path.abspath(uri)
    return uri.rstrip("/")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


class Storage:
    """Hadoop FileSystem operations bound to one SparkSession."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm: Any = pyspark_private.jvm(spark)
        self._conf = pyspark_private.hadoop_configuration(spark)

    def _path(self, uri: str) -> tuple[Any, Any]:  # (org.apache.hadoop.fs.FileSystem, ...fs.Path)
        path = self._jvm.org.apache.hadoop.fs.Path(normalize(uri))
        return path.getFileSystem(self._conf), path

    def qualified(self, uri: str) -> str:
        """The fully qualified form Spark uses in binaryFile's `path` column (file:/..., s3://...)."""
        fs, path = self._path(uri)
        return str(fs.makeQualified(path).toString())

    def exists(self, uri: str) -> bool:
        fs, path = self._path(uri)
        return bool(fs.exists(path))

    def is_dir(self, uri: str) -> bool:
        fs, path = self._path(uri)
        return bool(fs.exists(path) and fs.getFileStatus(path).isDirectory())

    def is_empty_or_missing(self, uri: str) -> bool:
        fs, path = self._path(uri)
        if not fs.exists(path):
            return True
        return bool(fs.getFileStatus(path).isDirectory() and len(fs.listStatus(path)) == 0)

    def subfolders(self, uri: str) -> list[str]:
        """The names of the folders directly in `uri`, sorted."""
        fs, path = self._path(uri)
        return sorted(str(s.getPath().getName()) for s in fs.listStatus(path) if s.isDirectory())

    def total_bytes(self, uri: str) -> int:
        """The bytes of every file under `uri`."""
        fs, path = self._path(uri)
        return int(fs.getContentSummary(path).getLength())

    def delete(self, uri: str) -> None:
        fs, path = self._path(uri)
        if fs.exists(path):
            fs.delete(path, True)

    def read_text(self, uri: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "file"
            self.download(uri, str(local))
            return local.read_text(encoding="utf-8")

    def write_text(self, uri: str, text: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(uri).name
            local.write_text(text, encoding="utf-8")
            self.upload(str(local), uri)

    def download(self, uri: str, local_path: str) -> None:
        fs, path = self._path(uri)
        dst = self._jvm.org.apache.hadoop.fs.Path(os.path.abspath(local_path))
        fs.copyToLocalFile(False, path, dst, True)  # useRawLocalFileSystem: no .crc files

    def upload(self, local_path: str, uri: str) -> None:
        fs, path = self._path(uri)
        src = self._jvm.org.apache.hadoop.fs.Path(os.path.abspath(local_path))
        fs.copyFromLocalFile(False, True, src, path)
