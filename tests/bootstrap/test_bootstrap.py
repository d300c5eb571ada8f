"""The EMR bootstrap action, run for real on this machine in a sandbox.

A throwaway venv's python stands in for /usr/bin/python3.11 (FRUITS_PYTHON), and shims on PATH stand in
for `sudo` (records its arguments, then runs them), `dnf` and `aws` (record, then do what the test says).
The heavy test installs the real spark_job/requirements.txt into a fresh venv (no --system-site-packages),
once per module; the failure cases use tiny wheels built here, installed with --no-index, so they are
fast and need no network.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bootstrap" / "install_python_deps.sh"
REQUIREMENTS = REPO / "spark_job" / "requirements.txt"
# What the job imports, by import name: the import check must print a version line for each.
IMPORT_NAMES = {
    "tensorflow-cpu": "tensorflow",
    "pillow": "PIL",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "matplotlib": "matplotlib",
}

SUDO_SHIM = """#!/bin/sh
printf '%s\\n' "$*" >> "$FRUITS_TEST_LOG_DIR/sudo.log"
exec "$@"
"""
# dnf: records its arguments; installs the interpreter only when the test gave it one to install.
DNF_SHIM = """#!/bin/sh
printf '%s\\n' "$*" >> "$FRUITS_TEST_LOG_DIR/dnf.log"
if [ -n "${FRUITS_TEST_DNF_PROVIDES:-}" ]; then
  printf '#!/bin/sh\\nexec "%s" "$@"\\n' "$FRUITS_TEST_DNF_PROVIDES" > "$FRUITS_PYTHON"
  chmod +x "$FRUITS_PYTHON"
  exit 0
fi
echo "dnf shim: no package available" >&2
exit 1
"""
# aws: `aws s3 cp s3://test-bucket/KEY DEST ...` copies $FRUITS_TEST_S3_ROOT/KEY; a missing key fails like S3.
AWS_SHIM = """#!/bin/sh
printf '%s\\n' "$*" >> "$FRUITS_TEST_LOG_DIR/aws.log"
[ "$1" = s3 ] && [ "$2" = cp ] || { echo "aws shim: unexpected call" >&2; exit 2; }
shift 2
[ "$1" = --only-show-errors ] && shift
key=${1#s3://test-bucket/}
if [ ! -f "$FRUITS_TEST_S3_ROOT/$key" ]; then
  echo "fatal error: An error occurred (404) when calling the HeadObject operation: Not Found" >&2
  exit 1
fi
cp "$FRUITS_TEST_S3_ROOT/$key" "$2"
"""


def parse_pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def make_venv(path: Path) -> Path:
    # Not --system-site-packages: the script itself must install the pins into it.
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def build_wheel(wheelhouse: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal pure-python wheel, written by hand (no build backend, no network)."""
    dist = re.sub(r"[-_.]+", "_", name)
    dist_info = f"{dist}-{version}.dist-info"
    entries = dict(files)
    entries[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    entries[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: fruits-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, text in entries.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    entries[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = wheelhouse / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in entries.items():
            archive.writestr(path, text)
    return wheel


class Sandbox:
    """Shims on PATH, a log dir, and a runner for the real script."""

    def __init__(self, root: Path, python: Path):
        self.root = root
        self.python = python
        self.bin = root / "bin"
        self.logs = root / "logs"
        self.s3 = root / "s3"
        for folder in (self.bin, self.logs, self.s3):
            folder.mkdir(parents=True, exist_ok=True)
        for name, text in (("sudo", SUDO_SHIM), ("dnf", DNF_SHIM), ("aws", AWS_SHIM)):
            shim = self.bin / name
            shim.write_text(text)
            shim.chmod(0o755)

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FRUITS_PYTHON": str(self.python),
            "FRUITS_PIP_NO_CACHE": "0",  # EMR default is 1 (--no-cache-dir); here pip's cache saves minutes
            "FRUITS_TEST_LOG_DIR": str(self.logs),
            "FRUITS_TEST_S3_ROOT": str(self.s3),
            "TMPDIR": str(self.root),
            **env,
        }
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def calls(self, tool: str) -> list[str]:
        log = self.logs / f"{tool}.log"
        return log.read_text().splitlines() if log.exists() else []

    def clear_calls(self) -> None:
        for log in self.logs.iterdir():
            log.unlink()


def installed_version(python: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.strip()


# --- static ------------------------------------------------------------------------------------------


def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: apt-get install -y shellcheck (.ci/run installs it)")
    scripts = sorted(str(p) for p in (REPO / "bootstrap").glob("*.sh"))
    assert scripts, "no bootstrap/*.sh found"
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", *scripts], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_script_is_strict_and_executable():
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(SCRIPT, os.X_OK), "EMR runs the script directly: it must be executable"


def test_requirements_are_exact_pins():
    # The one source of truth the bootstrap installs: every line pinned with ==, nothing floating.
    pins = parse_pins(REQUIREMENTS)
    assert set(IMPORT_NAMES) <= set(pins), pins
    for name, version in pins.items():
        assert re.fullmatch(r"\d+(\.\d+)+", version), f"{name}=={version} is not an exact pin"


# --- the real install -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_install(tmp_path_factory):
    """Run the script twice on spark_job/requirements.txt in a fresh venv; keep both results."""
    root = tmp_path_factory.mktemp("bootstrap-real")
    sandbox = Sandbox(root, make_venv(root / "venv"))
    started = time.monotonic()
    first = sandbox.run(str(REQUIREMENTS), timeout=1200)
    first_seconds = time.monotonic() - started
    first_sudo = sandbox.calls("sudo")
    first_dnf = sandbox.calls("dnf")
    sandbox.clear_calls()
    started = time.monotonic()
    second = sandbox.run(str(REQUIREMENTS), timeout=600)
    second_seconds = time.monotonic() - started
    print(f"\nbootstrap real install: first run {first_seconds:.0f} s, second run {second_seconds:.0f} s")
    return {
        "sandbox": sandbox,
        "first": first,
        "first_sudo": first_sudo,
        "first_dnf": first_dnf,
        "second": second,
        "second_sudo": sandbox.calls("sudo"),
    }


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    out, err = result.stdout[-6000:], result.stderr[-6000:]
    return f"exit {result.returncode}\n--- stdout\n{out}\n--- stderr\n{err}"


@pytest.mark.slow
def test_installs_the_pins_and_passes_its_import_check(real_install):
    first = real_install["first"]
    assert first.returncode == 0, _explain(first)
    python = real_install["sandbox"].python
    for dist, version in parse_pins(REQUIREMENTS).items():
        assert installed_version(python, dist) == version, dist
    # One version line per package the job imports, with the pinned version.
    pins = parse_pins(REQUIREMENTS)
    for dist, module in IMPORT_NAMES.items():
        version = re.escape(pins[dist])
        pattern = rf"^\S+Z \[install_python_deps\] INFO import ok: {re.escape(module)} {version} "
        assert re.search(pattern, first.stdout, re.M), f"no import line for {module}\n{first.stdout[-3000:]}"
    assert "all 6 requirements import" in first.stdout
    assert "Successfully installed" in first.stdout


@pytest.mark.slow
def test_pip_runs_through_sudo_on_the_given_interpreter(real_install):
    python = str(real_install["sandbox"].python)
    sudo_calls = real_install["first_sudo"]
    assert len(sudo_calls) == 1, sudo_calls
    call = sudo_calls[0]
    assert f"{python} -m pip install" in call
    assert f"-r {REQUIREMENTS}" in call
    # The interpreter has pip: no dnf install.
    assert real_install["first_dnf"] == []


@pytest.mark.slow
def test_second_run_is_idempotent(real_install):
    second = real_install["second"]
    assert second.returncode == 0, _explain(second)
    assert "Successfully installed" not in second.stdout, "a second run must not reinstall anything"
    assert "Requirement already satisfied: tensorflow-cpu==2.21.0" in second.stdout
    assert "all 6 requirements import" in second.stdout
    assert len(real_install["second_sudo"]) == 1


# --- fast cases on tiny wheels --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A light venv and a wheelhouse: fruits-ok (imports), fruits-renamed (dist name != import name),
    fruits-broken (installs, then raises at import, like a wheel built for another CPU)."""
    root = tmp_path_factory.mktemp("bootstrap-tiny")
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir()
    build_wheel(wheelhouse, "fruits-ok", "1.0", {"fruits_ok/__init__.py": '__version__ = "1.0"\n'})
    build_wheel(wheelhouse, "fruits-renamed", "2.0", {"renamedmod/__init__.py": ""})
    build_wheel(
        wheelhouse,
        "fruits-broken",
        "1.0",
        {"fruits_broken/__init__.py": 'raise ImportError("libfruit.so: cannot open shared object file")\n'},
    )
    return Sandbox(root, make_venv(root / "venv")), wheelhouse


def _requirements(folder: Path, wheelhouse: Path, *pins: str) -> Path:
    path = folder / "requirements.txt"
    header = f"# test pins\n--no-index\n--find-links {wheelhouse}\n"
    path.write_text(header + "".join(f"{pin}\n" for pin in pins))
    return path


def test_tiny_pins_install_and_import(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    requirements = _requirements(tmp_path, wheelhouse, "fruits-ok==1.0", "fruits-renamed==2.0  # comment")
    result = sandbox.run(str(requirements))
    assert result.returncode == 0, _explain(result)
    assert "import ok: fruits_ok 1.0 (fruits-ok==1.0)" in result.stdout
    # The import name comes from the installed distribution's files, not from its name.
    assert "import ok: renamedmod 2.0 (fruits-renamed==2.0)" in result.stdout
    assert "all 2 requirements import" in result.stdout


def test_bad_pin_fails_with_a_pip_message(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    requirements = _requirements(tmp_path, wheelhouse, "fruits-ok==9.9.9")
    result = sandbox.run(str(requirements))
    assert result.returncode == 5, _explain(result)
    assert re.search(r"ERROR pip install failed \(exit \d+\) for .*requirements\.txt", result.stderr)
    assert "fruits-ok==9.9.9" in result.stderr  # pip's own explanation is kept in the log
    assert "import check" not in result.stdout, "must stop before the import check"


def test_failed_import_fails_with_a_message(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    requirements = _requirements(tmp_path, wheelhouse, "fruits-ok==1.0", "fruits-broken==1.0")
    result = sandbox.run(str(requirements))
    assert result.returncode == 6, _explain(result)
    assert (
        "ERROR import fruits_broken failed (fruits-broken==1.0): "
        "ImportError: libfruit.so: cannot open shared object file" in result.stderr
    )
    assert "1 of 2 requirements failed the import check" in result.stderr
    assert "ERROR import check failed for" in result.stderr
    assert "import ok: fruits_ok 1.0" in result.stdout  # the other packages are still reported


def test_missing_argument_prints_usage(tiny):
    sandbox, _ = tiny
    sandbox.clear_calls()
    result = sandbox.run()
    assert result.returncode == 2
    assert "usage: " in result.stderr and "REQUIREMENTS_URI" in result.stderr
    assert "ERROR expected exactly one argument" in result.stderr
    assert sandbox.calls("sudo") == []


def test_missing_local_file_fails_fast(tiny, tmp_path):
    sandbox, _ = tiny
    result = sandbox.run(str(tmp_path / "nope.txt"))
    assert result.returncode == 3
    assert "requirements file not found or not readable" in result.stderr


def test_s3_uri_is_downloaded_with_aws_cli(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    key = "fruits/bootstrap/requirements.txt"
    (sandbox.s3 / key).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_requirements(tmp_path, wheelhouse, "fruits-ok==1.0"), sandbox.s3 / key)
    sandbox.clear_calls()
    result = sandbox.run(f"s3://test-bucket/{key}")
    assert result.returncode == 0, _explain(result)
    (call,) = sandbox.calls("aws")
    assert call.startswith(f"s3 cp --only-show-errors s3://test-bucket/{key} ")
    assert "import ok: fruits_ok 1.0" in result.stdout


def test_s3_download_failure_fails_fast(tiny):
    sandbox, _ = tiny
    sandbox.clear_calls()
    result = sandbox.run("s3://test-bucket/missing/requirements.txt")
    assert result.returncode == 3, _explain(result)
    assert "ERROR download failed: aws s3 cp s3://test-bucket/missing/requirements.txt" in result.stderr
    assert sandbox.calls("sudo") == []


def test_installs_python311_and_pip_with_dnf_when_missing(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    requirements = _requirements(tmp_path, wheelhouse, "fruits-ok==1.0")
    missing = tmp_path / "usr-bin" / "python3.11"
    missing.parent.mkdir()
    sandbox.clear_calls()
    result = sandbox.run(
        str(requirements), FRUITS_PYTHON=str(missing), FRUITS_TEST_DNF_PROVIDES=str(sandbox.python)
    )
    assert result.returncode == 0, _explain(result)
    assert sandbox.calls("dnf") == ["-y install python3.11 python3.11-pip"]
    assert "dnf -y install python3.11 python3.11-pip" in sandbox.calls("sudo")[0]
    assert "import ok: fruits_ok 1.0" in result.stdout

    # Idempotent: once the interpreter is there, dnf is not called again.
    sandbox.clear_calls()
    again = sandbox.run(str(requirements), FRUITS_PYTHON=str(missing))
    assert again.returncode == 0, _explain(again)
    assert sandbox.calls("dnf") == []


def test_dnf_failure_fails_fast(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    requirements = _requirements(tmp_path, wheelhouse, "fruits-ok==1.0")
    result = sandbox.run(str(requirements), FRUITS_PYTHON=str(tmp_path / "absent" / "python3.11"))
    assert result.returncode == 4, _explain(result)
    assert "ERROR dnf install failed: python3.11 python3.11-pip" in result.stderr


def test_header_documents_usage_and_overrides():
    header = SCRIPT.read_text().split("set -euo pipefail", 1)[0]
    for needle in ("Usage:", "REQUIREMENTS_URI", "FRUITS_PYTHON", "FRUITS_PIP_NO_CACHE", "Exit status"):
        assert needle in header, needle


def test_relative_interpreter_is_rejected(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    requirements = _requirements(tmp_path, wheelhouse, "fruits-ok==1.0")
    result = sandbox.run(str(requirements), FRUITS_PYTHON="python3.11")
    assert result.returncode == 2
    assert "FRUITS_PYTHON must be an absolute path" in result.stderr
