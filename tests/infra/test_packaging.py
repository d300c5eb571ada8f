"""The spark_job zip is deterministic and importable; the run id follows code and settings."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stacks import PROJECT_ROOT, packaging


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of spark_job/ with a cache and a hidden file that must stay out of the zip."""
    copy = tmp_path / "src" / "spark_job"
    shutil.copytree(PROJECT_ROOT / "spark_job", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0cache")
    (copy / ".hidden").write_text("x")
    return copy


def test_zip_is_byte_identical_across_builds_and_mtimes(package_copy: Path, tmp_path: Path):
    first = packaging.build_package_zip(package_copy, tmp_path / "a")
    for path in package_copy.rglob("*.py"):
        path.touch()  # new mtimes must not change a byte
    second = packaging.build_package_zip(package_copy, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert first.name == second.name


def test_zip_layout(package_copy: Path, tmp_path: Path):
    archive = zipfile.ZipFile(packaging.build_package_zip(package_copy, tmp_path))
    names = archive.namelist()
    assert names == sorted(names)
    assert "spark_job/__init__.py" in names
    assert "spark_job/entrypoint.py" in names
    assert all(name.startswith("spark_job/") for name in names)
    assert not any("__pycache__" in name or name.endswith((".pyc", ".hidden")) for name in names)
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    expected = {
        f"spark_job/{p.relative_to(package_copy).as_posix()}" for p in packaging.package_files(package_copy)
    }
    assert set(names) == expected


def test_zip_is_importable_as_py_files(tmp_path: Path):
    built = packaging.build_package_zip(PROJECT_ROOT / "spark_job", tmp_path)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import spark_job.driver.config as c; print(c.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(built)], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"{built}/spark_job/driver/config.py"


def test_zip_changes_with_the_code(package_copy: Path, tmp_path: Path):
    before = packaging.build_package_zip(package_copy, tmp_path)
    with (package_copy / "config.py").open("a") as handle:
        handle.write("\n# changed\n")
    after = packaging.build_package_zip(package_copy, tmp_path)
    assert before.name != after.name


def test_run_id_follows_files_and_settings(tmp_path: Path):
    code = tmp_path / "job.py"
    code.write_text("print(1)\n")
    settings = {"imageSize": 224}
    run_id = packaging.derive_run_id([code], settings)
    assert run_id.startswith("run-")
    assert len(run_id) == len("run-") + 12
    assert packaging.derive_run_id([code], dict(settings)) == run_id
    assert packaging.derive_run_id([code], {"imageSize": 160}) != run_id
    code.write_text("print(2)\n")
    assert packaging.derive_run_id([code], settings) != run_id
