"""The EMR bootstrap action, run for real on this machine in a sandbox.

A throwaway venv's python stands in for /usr/bin/python3.11 (FRUITS_PYTHON), and shims on PATH stand in
for `sudo` (records its arguments, then runs them), `dnf` and `aws` (record, then do what the test says).
The heavy test installs the real lock (spark_job/requirements.x86_64.lock) from the real wheelhouse (the
one `make wheelhouse` builds and the stack ships: this machine's platform, Linux x86_64 cp311, is the
cluster's), zipped as the CDK asset is, into a fresh venv (no --system-site-packages), with the network
cut: in a network namespace of its own (unshare --net) where no address but loopback exists, and with
pip's index pointed at an unreachable address besides --no-index. The failure cases use tiny wheels built
here and a hashed lock of them, so they are fast.
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

from stacks.runtime_deps import read_lock
from tests.runtime_support import LOCAL_PLATFORM, ensure_wheelhouse

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bootstrap" / "install_python_deps.sh"
LOCK = LOCAL_PLATFORM.lock_path(REPO)
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

    def run(
        self, *args: str, timeout: float = 120, offline: bool = False, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """The script with `args`; offline: in a network namespace of its own (no route anywhere)."""
        full_env = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "FRUITS_PYTHON": str(self.python),
            "FRUITS_TEST_LOG_DIR": str(self.logs),
            "FRUITS_TEST_S3_ROOT": str(self.s3),
            "TMPDIR": str(self.root),
            # Ignored (the script runs pip --isolated): proves no variable of this machine's leaks in.
            "PIP_FIND_LINKS": "/nonexistent/find-links",
            **env,
        }
        return subprocess.run(
            [*(network_cut() if offline else []), "bash", str(SCRIPT), *args],
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


def network_cut() -> list[str]:
    """The command prefix running a process in a new, empty network namespace (root: unshare --net;
    otherwise a user namespace too, unshare -rn). Fails when neither is allowed here."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to cut the network"
    prefix = [unshare, "--net"] if os.geteuid() == 0 else [unshare, "--map-root-user", "--net"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    assert probe.returncode == 0, f"cannot create a network namespace: {probe.stderr}"
    return prefix


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


def test_wheelhouse_prefix_is_the_lock_and_no_index_is_configured():
    """pip reads the lock itself, from the wheelhouse only: no hand-written requirement parsing."""
    text = SCRIPT.read_text()
    assert '--no-index --find-links "$wheels"' in text
    assert '--require-hashes -r "$lock"' in text
    assert "PIP_CONFIG_FILE=/dev/null" in text and "-m pip --isolated" in text
    assert "re.match" not in text, "requirement lines are pip's business"


# --- the real install -----------------------------------------------------------------------------------


def zip_wheelhouse(folder: Path, target: Path) -> Path:
    """The wheelhouse as `cdk deploy` uploads a folder asset: one zip of its files."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return target


@pytest.fixture(scope="module")
def wheelhouse_zip(module_tmp: Path) -> Path:
    return zip_wheelhouse(ensure_wheelhouse(), module_tmp / "wheelhouse.zip")


@pytest.fixture(scope="module")
def real_install(module_tmp: Path, wheelhouse_zip: Path):
    """Run the script twice on the lock and the zipped wheelhouse in a fresh venv, offline; keep both."""
    root = module_tmp / "bootstrap-real"
    root.mkdir()
    sandbox = Sandbox(root, make_venv(root / "venv"))
    started = time.monotonic()
    first = sandbox.run(str(LOCK), str(wheelhouse_zip), timeout=1200, offline=True)
    first_seconds = time.monotonic() - started
    first_sudo = sandbox.calls("sudo")
    first_dnf = sandbox.calls("dnf")
    sandbox.clear_calls()
    started = time.monotonic()
    second = sandbox.run(str(LOCK), str(wheelhouse_zip), timeout=600, offline=True)
    second_seconds = time.monotonic() - started
    print(
        f"\nbootstrap from the wheelhouse, offline: first run {first_seconds:.0f} s, "
        f"second {second_seconds:.0f} s"
    )
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


def test_the_namespace_really_has_no_network(tmp_path: Path):
    probe = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('151.101.0.223', 443), timeout=5)\n"  # pypi.org's Fastly address
        "except OSError as exc:\n"
        "    print('unreachable', type(exc).__name__)\n"
        "else:\n"
        "    print('connected')\n"
    )
    result = subprocess.run(
        [*network_cut(), sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.startswith("unreachable"), result.stdout


@pytest.mark.slow
def test_installs_every_locked_package_offline_and_each_imports_at_its_version(real_install):
    first = real_install["first"]
    assert first.returncode == 0, _explain(first)
    python = real_install["sandbox"].python
    locked = read_lock(LOCAL_PLATFORM)
    for name, package in locked.items():
        assert installed_version(python, name) == package.version, name
        checked = (
            rf"\] INFO (import ok: \S+ \S+|installed:) \({re.escape(name)}=={re.escape(package.version)}\)"
        )
        assert re.search(checked, first.stdout), f"no import check line for {name}\n{first.stdout[-3000:]}"
    # One version line per package the job imports, with the locked version.
    for dist, module in IMPORT_NAMES.items():
        version = re.escape(locked[dist].version)
        pattern = rf"^\S+Z \[install_python_deps\] INFO import ok: {re.escape(module)} {version} "
        assert re.search(pattern, first.stdout, re.M), f"no import line for {module}\n{first.stdout[-3000:]}"
    assert f"all {len(locked)} locked packages import" in first.stdout
    assert "Successfully installed" in first.stdout
    assert "ERROR" not in first.stderr


@pytest.mark.slow
def test_pip_runs_through_sudo_with_no_index_and_hashes_required(real_install):
    python = str(real_install["sandbox"].python)
    sudo_calls = real_install["first_sudo"]
    assert len(sudo_calls) == 1, sudo_calls
    call = sudo_calls[0]
    assert f"{python} -m pip --isolated install" in call
    assert "--no-index --find-links " in call
    assert f"--require-hashes -r {LOCK}" in call
    assert "--no-cache-dir" in call  # the EMR default: nothing kept on the root volume
    # The interpreter has pip: no dnf install.
    assert real_install["first_dnf"] == []


@pytest.mark.slow
def test_second_run_is_idempotent(real_install):
    second = real_install["second"]
    assert second.returncode == 0, _explain(second)
    assert "Successfully installed" not in second.stdout, "a second run must not reinstall anything"
    assert "Requirement already satisfied: tensorflow-cpu==2.21.0" in second.stdout
    assert f"all {len(read_lock(LOCAL_PLATFORM))} locked packages import" in second.stdout
    assert len(real_install["second_sudo"]) == 1


@pytest.mark.slow
def test_a_tampered_wheel_is_refused_by_its_hash(tmp_path: Path):
    """One real wheel of the wheelhouse changed by a byte: pip refuses it, nothing is installed, and the
    script exits 5 with an ERROR line naming the cause."""
    real = ensure_wheelhouse()
    tampered = tmp_path / "wheelhouse"
    tampered.mkdir()
    for wheel in real.glob("*.whl"):
        if wheel.name.startswith("six-"):
            (tampered / wheel.name).write_bytes(wheel.read_bytes() + b"\0")
        else:
            (tampered / wheel.name).symlink_to(wheel)
    sandbox = Sandbox(tmp_path / "sandbox", make_venv(tmp_path / "venv"))
    result = sandbox.run(str(LOCK), str(tampered), timeout=600, offline=True)
    assert result.returncode == 5, _explain(result)
    assert re.search(r"\] ERROR pip install failed \(exit \d+\): hash mismatch", result.stderr), _explain(
        result
    )
    assert "DO NOT MATCH THE HASHES" in result.stdout  # pip's own report, kept in the log
    assert "six==1.17.0" in result.stdout
    assert "import check" not in result.stdout, "must stop before the import check"
    assert (
        subprocess.run(
            [str(sandbox.python), "-c", "import numpy"], capture_output=True, check=False
        ).returncode
        != 0
    ), "nothing may be installed from a wheelhouse with a bad wheel"


# --- fast cases on tiny wheels --------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(module_tmp: Path):
    """A light venv and a wheelhouse: fruits-ok (imports), fruits-renamed (dist name != import name),
    fruits-broken (installs, then raises at import, like a wheel built for another CPU)."""
    root = module_tmp / "bootstrap-tiny"
    root.mkdir()
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


def tiny_lock(folder: Path, wheelhouse: Path, *names: str) -> tuple[Path, Path]:
    """A hashed lock (as uv writes it) of the named tiny wheels, and a wheelhouse holding only them."""
    house = folder / "house"
    house.mkdir(exist_ok=True)
    lines = ["# tiny lock"]
    for name in names:
        (wheel,) = wheelhouse.glob(f"{name.replace('-', '_')}-*.whl")
        shutil.copy(wheel, house / wheel.name)
        version = wheel.name.split("-")[1]
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{sha256(wheel)}\n    # via test")
    lock = folder / "requirements.lock"
    lock.write_text("\n".join(lines) + "\n")
    return lock, house


def test_tiny_lock_installs_and_imports(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok", "fruits-renamed")
    result = sandbox.run(str(lock), str(house), offline=True)
    assert result.returncode == 0, _explain(result)
    assert "import ok: fruits_ok 1.0 (fruits-ok==1.0)" in result.stdout
    # The import name comes from the installed distribution's files, not from its name.
    assert "import ok: renamedmod 2.0 (fruits-renamed==2.0)" in result.stdout
    assert "all 2 locked packages import" in result.stdout


def test_a_zipped_wheelhouse_is_extracted(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok")
    result = sandbox.run(str(lock), str(zip_wheelhouse(house, tmp_path / "w.zip")), offline=True)
    assert result.returncode == 0, _explain(result)
    assert "wheelhouse (" in result.stdout and ": 1 wheels" in result.stdout


def fresh(tmp_path: Path) -> Sandbox:
    """A sandbox with an empty venv: pip checks the hashes of what it installs, not of what is there."""
    return Sandbox(tmp_path / "fresh", make_venv(tmp_path / "fresh-venv"))


def test_a_tampered_tiny_wheel_fails_with_hash_mismatch(tiny, tmp_path):
    _, wheelhouse = tiny
    sandbox = fresh(tmp_path)
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-renamed")
    (wheel,) = house.glob("*.whl")
    build_wheel(house, "fruits-renamed", "2.0", {"renamedmod/__init__.py": "import os  # injected\n"})
    assert sha256(wheel) not in lock.read_text()
    result = sandbox.run(str(lock), str(house), offline=True)
    assert result.returncode == 5, _explain(result)
    assert "ERROR pip install failed" in result.stderr and "hash mismatch" in result.stderr


def test_a_wheel_missing_from_the_wheelhouse_fails_with_a_pip_message(tiny, tmp_path):
    _, wheelhouse = tiny
    sandbox = fresh(tmp_path)
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok")
    for wheel in house.glob("*.whl"):
        wheel.unlink()
    build_wheel(house, "fruits-other", "1.0", {"fruits_other/__init__.py": ""})
    result = sandbox.run(str(lock), str(house), offline=True)
    assert result.returncode == 5, _explain(result)
    assert re.search(r"ERROR pip install failed \(exit \d+\) for .*requirements\.lock", result.stderr)
    assert "a locked wheel is missing" in result.stderr
    assert "import check" not in result.stdout, "must stop before the import check"


def test_failed_import_fails_with_a_message(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok", "fruits-broken")
    result = sandbox.run(str(lock), str(house))
    assert result.returncode == 6, _explain(result)
    assert (
        "ERROR import fruits_broken failed (fruits-broken==1.0): "
        "ImportError: libfruit.so: cannot open shared object file" in result.stderr
    )
    assert "1 of 2 locked packages failed the import check" in result.stderr
    assert "ERROR import check failed for" in result.stderr
    assert "import ok: fruits_ok 1.0" in result.stdout  # the other packages are still reported


def test_missing_argument_prints_usage(tiny):
    sandbox, _ = tiny
    sandbox.clear_calls()
    result = sandbox.run("only-the-lock")
    assert result.returncode == 2
    assert "usage: " in result.stderr and "LOCK_URI WHEELHOUSE_URI" in result.stderr
    assert "ERROR expected two arguments" in result.stderr
    assert sandbox.calls("sudo") == []


def test_missing_local_files_fail_fast(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    result = sandbox.run(str(tmp_path / "nope.lock"), str(wheelhouse))
    assert result.returncode == 3
    assert "lock not found or not readable" in result.stderr
    lock, _ = tiny_lock(tmp_path, wheelhouse, "fruits-ok")
    result = sandbox.run(str(lock), str(tmp_path / "no-wheels.zip"))
    assert result.returncode == 3
    assert "wheelhouse not found or not readable" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = sandbox.run(str(lock), str(empty))
    assert result.returncode == 3
    assert "no wheel in the wheelhouse" in result.stderr


def test_s3_uris_are_downloaded_with_aws_cli(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok")
    keys = {"lock": "assets/abc.lock", "wheels": "assets/def.zip"}
    (sandbox.s3 / "assets").mkdir(parents=True, exist_ok=True)
    shutil.copy(lock, sandbox.s3 / keys["lock"])
    zip_wheelhouse(house, sandbox.s3 / keys["wheels"])
    sandbox.clear_calls()
    result = sandbox.run(f"s3://test-bucket/{keys['lock']}", f"s3://test-bucket/{keys['wheels']}")
    assert result.returncode == 0, _explain(result)
    calls = sandbox.calls("aws")
    assert [c.split()[:4] for c in calls] == [
        ["s3", "cp", "--only-show-errors", f"s3://test-bucket/{keys['lock']}"],
        ["s3", "cp", "--only-show-errors", f"s3://test-bucket/{keys['wheels']}"],
    ]
    assert "import ok: fruits_ok 1.0" in result.stdout


def test_s3_download_failure_fails_fast(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    sandbox.clear_calls()
    result = sandbox.run("s3://test-bucket/missing/requirements.lock", str(wheelhouse))
    assert result.returncode == 3, _explain(result)
    assert "ERROR download failed: aws s3 cp s3://test-bucket/missing/requirements.lock" in result.stderr
    assert sandbox.calls("sudo") == []


def test_installs_python311_and_pip_with_dnf_when_missing(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok")
    missing = tmp_path / "usr-bin" / "python3.11"
    missing.parent.mkdir()
    sandbox.clear_calls()
    result = sandbox.run(
        str(lock), str(house), FRUITS_PYTHON=str(missing), FRUITS_TEST_DNF_PROVIDES=str(sandbox.python)
    )
    assert result.returncode == 0, _explain(result)
    assert sandbox.calls("dnf") == ["-y install python3.11 python3.11-pip"]
    assert "dnf -y install python3.11 python3.11-pip" in sandbox.calls("sudo")[0]
    assert "import ok: fruits_ok 1.0" in result.stdout

    # Idempotent: once the interpreter is there, dnf is not called again.
    sandbox.clear_calls()
    again = sandbox.run(str(lock), str(house), FRUITS_PYTHON=str(missing))
    assert again.returncode == 0, _explain(again)
    assert sandbox.calls("dnf") == []


def test_dnf_failure_fails_fast(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok")
    result = sandbox.run(str(lock), str(house), FRUITS_PYTHON=str(tmp_path / "absent" / "python3.11"))
    assert result.returncode == 4, _explain(result)
    assert "ERROR dnf install failed: python3.11 python3.11-pip" in result.stderr


def test_header_documents_usage_and_overrides():
    header = SCRIPT.read_text().split("set -euo pipefail", 1)[0]
    for needle in (
        "Usage:", "LOCK_URI", "WHEELHOUSE_URI", "FRUITS_PYTHON", "FRUITS_PIP_NO_CACHE", "Exit status",
        "--require-hashes", "--no-index",
    ):  # fmt: skip
        assert needle in header, needle


def test_relative_interpreter_is_rejected(tiny, tmp_path):
    sandbox, wheelhouse = tiny
    lock, house = tiny_lock(tmp_path, wheelhouse, "fruits-ok")
    result = sandbox.run(str(lock), str(house), FRUITS_PYTHON="python3.11")
    assert result.returncode == 2
    assert "FRUITS_PYTHON must be an absolute path" in result.stderr
