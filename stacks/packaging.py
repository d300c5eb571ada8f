"""Job code shipped to EMR: a deterministic zip of the spark_job package, and the run id.

The zip is rebuilt at every synth from spark_job/ with fixed timestamps and permissions, sorted entries and
no __pycache__, so identical sources give a byte-identical zip (and the same CDK asset hash): only a real
code change re-uploads it and re-runs the job.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Paths inside the project, relative to its root (the directory holding app.py).
PACKAGE_DIR = "spark_job"
ENTRY_FILE = "spark_job/entrypoint.py"
BOOTSTRAP_SCRIPT = "bootstrap/install_python_deps.sh"
BUILD_DIR = "build/assets"

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
_EXCLUDED_DIRS = {"__pycache__"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def package_files(package_dir: Path) -> list[Path]:
    """The files that go into the zip, sorted: no caches, no hidden files."""
    files = []
    for path in package_dir.rglob("*"):
        rel = path.relative_to(package_dir)
        if not path.is_file() or path.suffix in _EXCLUDED_SUFFIXES:
            continue
        if any(part in _EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(package_dir).as_posix())


def zip_bytes(package_dir: Path) -> bytes:
    """The zip of `package_dir`, entries named `<package>/<relative path>` (importable via --py-files)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in package_files(package_dir):
            name = f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, whatever the build machine
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def build_package_zip(package_dir: Path, out_dir: Path) -> Path:
    """Write the zip to `out_dir/<package>-<sha256 prefix>.zip` (content-addressed: concurrent synths are
    safe) and return its path."""
    if not (package_dir / "__init__.py").is_file():
        raise FileNotFoundError(f"{package_dir} is not a Python package (no __init__.py)")
    data = zip_bytes(package_dir)
    digest = hashlib.sha256(data).hexdigest()[:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{package_dir.name}-{digest}.zip"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(target)
    return target


def derive_run_id(files: Iterable[Path], settings: Mapping[str, Any]) -> str:
    """A run id that changes whenever the shipped code or the job's settings change.

    files: the code shipped to the cluster (package zip, entry file, bootstrap script, lock).
    settings: JSON-serialisable job and cluster settings (config fingerprint, Spark settings, the lock's
        and the weights' sha256).
    """
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return f"run-{digest.hexdigest()[:12]}"
