"""The job's locked runtime: hashed locks per cluster platform, and the wheelhouse shipped to the nodes.

- `spark_job/requirements.in` holds the direct needs; `make lock` compiles it with uv into one lock per
  platform (`spark_job/requirements.<arch>.lock`): every package pinned, every file hash listed. The lock's
  first line records the sha256 of the `.in` file it was compiled from, so a test can tell it is stale.
- `make wheelhouse` downloads exactly the locked wheels for one platform (pip download, hashes checked) into
  `build/wheelhouse/<arch>/`, with a manifest (`wheelhouse.json`) naming the lock it was built from and each
  wheel's sha256. The CDK app refuses a wheelhouse whose manifest does not match the lock; the nodes install
  from it with `pip install --no-index --find-links <dir> --require-hashes -r <lock>`.

CLI (the Makefile's `lock`, `wheelhouse` targets):
    python scripts/runtime_deps.py lock
    python scripts/runtime_deps.py wheelhouse --arch x86_64 [--dest build/wheelhouse/x86_64]
    python scripts/runtime_deps.py check --arch x86_64 [--dest ...]     exit 1 when missing or stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS_IN = "spark_job/requirements.in"
WHEELHOUSE_ROOT = "build/wheelhouse"
MANIFEST = "wheelhouse.json"
PYTHON_VERSION = "3.11"  # EMR 7.x runs the job on /usr/bin/python3.11
# Amazon Linux 2023 has glibc 2.34: wheels tagged manylinux_2_34 and older install on it.
GLIBC = "2_34"
OLDEST_MANYLINUX_MINOR = 5  # manylinux_2_5 = manylinux1, the oldest manylinux tag
_INPUT_HASH = re.compile(r"^# input sha256: ([0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True)
class Platform:
    """A cluster platform: the machine name EC2 reports (uname -m) and its wheel tags."""

    arch: str

    @property
    def uv_platform(self) -> str:
        return f"{self.arch}-manylinux_{GLIBC}"

    @property
    def pip_platforms(self) -> list[str]:
        """Every tag a glibc-2.34 machine accepts: pip 26 does not expand --platform to older manylinux
        versions itself (it matched no contourpy wheel, tagged manylinux_2_27/2_28, with only 2_34)."""
        newest = int(GLIBC.split("_")[1])
        tags = [f"manylinux_2_{minor}_{self.arch}" for minor in range(newest, OLDEST_MANYLINUX_MINOR - 1, -1)]
        return [*tags, f"manylinux2014_{self.arch}"]

    @property
    def lock_name(self) -> str:
        return f"spark_job/requirements.{self.arch}.lock"

    def lock_path(self, root: Path = PROJECT_ROOT) -> Path:
        return root / self.lock_name

    def wheelhouse_dir(self, root: Path = PROJECT_ROOT) -> Path:
        return root / WHEELHOUSE_ROOT / self.arch


PLATFORMS = {arch: Platform(arch) for arch in ("x86_64", "aarch64")}
# Graviton families have a `g` right after the generation digit: m6g, m7g, c7gn, r8g, m7gd ...
_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*\.")


def arch_of_instance_type(instance_type: str) -> str:
    """x86_64 or aarch64 (Graviton) for an EC2 instance type name."""
    return "aarch64" if _GRAVITON.match(instance_type) else "x86_64"


@dataclass(frozen=True)
class LockedPackage:
    name: str  # canonical (PEP 503)
    version: str
    hashes: frozenset[str]  # sha256 hex digests of every file of that version


class LockError(ValueError):
    """A lock or wheelhouse that cannot be used; the message says what to run."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_sha256(root: Path = PROJECT_ROOT) -> str:
    return sha256_file(root / REQUIREMENTS_IN)


def recorded_input_sha256(lock_text: str) -> str | None:
    match = _INPUT_HASH.search(lock_text)
    return match.group(1) if match else None


def parse_lock(text: str) -> dict[str, LockedPackage]:
    """name -> LockedPackage from a `--generate-hashes` lock (pip's requirements format)."""
    logical = re.sub(r"\\\n", " ", text)
    packages: dict[str, LockedPackage] = {}
    for raw in logical.splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        spec = line.partition(" --hash")[0]
        requirement = Requirement(spec.strip())
        pins = [s for s in requirement.specifier if s.operator == "=="]
        if len(pins) != 1:
            raise LockError(f"not an exact pin in the lock: {spec.strip()!r}")
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        if not hashes:
            raise LockError(f"no --hash for {spec.strip()!r} in the lock")
        name = canonicalize_name(requirement.name)
        packages[name] = LockedPackage(name=name, version=pins[0].version, hashes=hashes)
    return packages


def read_lock(platform: Platform, root: Path = PROJECT_ROOT) -> dict[str, LockedPackage]:
    path = platform.lock_path(root)
    if not path.is_file():
        raise LockError(f"{path} is missing: run `make lock`")
    return parse_lock(path.read_text())


def lock_sha256(platform: Platform, root: Path = PROJECT_ROOT) -> str:
    return sha256_file(platform.lock_path(root))


def stale_reason(platform: Platform, root: Path = PROJECT_ROOT) -> str | None:
    """Why the lock no longer matches requirements.in (None: it does)."""
    path = platform.lock_path(root)
    if not path.is_file():
        return f"{path.name} is missing"
    text = path.read_text()
    recorded = recorded_input_sha256(text)
    if recorded != input_sha256(root):
        return f"{path.name} was compiled from another {REQUIREMENTS_IN} (input sha256 {recorded})"
    locked = parse_lock(text)
    environment = {
        "platform_machine": platform.arch,
        "python_version": PYTHON_VERSION,
        "sys_platform": "linux",
    }
    for raw in (root / REQUIREMENTS_IN).read_text().splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pinned = locked.get(canonicalize_name(requirement.name))
        if pinned is None:
            return f"{requirement.name} is not in {path.name}"
        if not requirement.specifier.contains(pinned.version, prereleases=True):
            return f"{path.name} pins {pinned.name}=={pinned.version}, {REQUIREMENTS_IN} wants {requirement}"
    return None


def compile_lock(platform: Platform, root: Path = PROJECT_ROOT, uv: str = "uv") -> Path:
    """Compile requirements.in into the platform's lock with uv (network: PyPI), recording the input hash."""
    out = platform.lock_path(root)
    command = [
        uv, "pip", "compile", REQUIREMENTS_IN, "--generate-hashes", "--no-header", "--quiet",
        "--python-version", PYTHON_VERSION, "--python-platform", platform.uv_platform,
        "--index-url", "https://pypi.org/simple",
    ]  # fmt: skip
    log.info("%s", " ".join(command))
    body = subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout
    header = (
        f"# The locked runtime of the Spark job on Linux {platform.arch}, Python {PYTHON_VERSION}.\n"
        f"# Generated by `make lock` from {REQUIREMENTS_IN}: do not edit.\n"
        f"#   uv {' '.join(command[1:])}\n"
        f"# input sha256: {input_sha256(root)}\n"
    )
    out.write_text(header + body)
    return out


def _isolated_pip_env() -> dict[str, str]:
    """pip without this machine's config files and PIP_* variables (extra indexes, find-links,
    constraints): the lock and PyPI decide alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def build_wheelhouse(platform: Platform, dest: Path, root: Path = PROJECT_ROOT) -> Path:
    """Download exactly the locked wheels for `platform` into `dest` (hashes checked by pip), then write the
    manifest. Built in a temporary folder beside `dest` and swapped in: an interrupted build leaves the old
    wheelhouse (or none), never a partial one."""
    lock = platform.lock_path(root)
    locked = read_lock(platform, root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        command = [
            sys.executable, "-m", "pip", "download", "--isolated", "--disable-pip-version-check",
            "--no-deps", "--require-hashes", "--only-binary=:all:",
            *(f"--platform={tag}" for tag in platform.pip_platforms),
            "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311",
            "--index-url", "https://pypi.org/simple", "--progress-bar", "off", "--quiet",
            "-r", str(lock), "-d", str(staging),
        ]  # fmt: skip
        log.info("%s", " ".join(command))
        subprocess.run(command, check=True, env=_isolated_pip_env())
        manifest = _manifest(staging, locked, lock_sha256(platform, root), platform)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.replace(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest


def _manifest(folder: Path, locked: dict[str, LockedPackage], lock_hash: str, platform: Platform) -> dict:
    wheels = {}
    for path in sorted(folder.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(path.name)
        package = locked.get(canonicalize_name(name))
        digest = sha256_file(path)
        if package is None or str(version) != package.version or digest not in package.hashes:
            raise LockError(f"{path.name} is not a locked file (sha256 {digest})")
        wheels[path.name] = {"sha256": digest, "size": path.stat().st_size}
    missing = set(locked) - {canonicalize_name(parse_wheel_filename(n)[0]) for n in wheels}
    if missing:
        raise LockError(f"no wheel for {', '.join(sorted(missing))} on {platform.arch}")
    return {"arch": platform.arch, "python": PYTHON_VERSION, "lockSha256": lock_hash, "wheels": wheels}


@dataclass(frozen=True)
class Wheelhouse:
    """A checked wheelhouse folder: its wheels are the lock's (by the manifest), all present."""

    path: Path
    platform: Platform
    lock_sha256: str
    manifest_sha256: str  # content hash of the folder for the CDK asset
    wheel_count: int
    size_bytes: int


def verify_wheelhouse(platform: Platform, folder: Path, root: Path = PROJECT_ROOT) -> Wheelhouse:
    """The wheelhouse in `folder`, or a LockError saying why it is missing or stale and what to run.

    Checks the manifest against the current lock (lock hash, one wheel per locked package, each wheel's
    sha256 among the lock's hashes) and each wheel's presence and size. The wheels' bytes are not hashed
    again here: pip does it on every node (--require-hashes), and `make wheelhouse` did it on download.
    """
    fix = f"run `make wheelhouse ARCH={platform.arch}`"
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise LockError(f"no wheelhouse for {platform.arch} in {folder}: {fix}")
    manifest = json.loads(manifest_path.read_text())
    lock_hash = lock_sha256(platform, root)
    if manifest.get("lockSha256") != lock_hash or manifest.get("arch") != platform.arch:
        raise LockError(f"the wheelhouse in {folder} was built from another lock: {fix}")
    locked = read_lock(platform, root)
    covered: set[str] = set()
    size = 0
    for filename, entry in manifest["wheels"].items():
        name, version, _, _ = parse_wheel_filename(filename)
        package = locked.get(canonicalize_name(name))
        if package is None or str(version) != package.version or entry["sha256"] not in package.hashes:
            raise LockError(f"{filename} in {folder} is not in the lock: {fix}")
        wheel = folder / filename
        if not wheel.is_file() or wheel.stat().st_size != entry["size"]:
            raise LockError(f"{filename} is missing or changed in {folder}: {fix}")
        covered.add(package.name)
        size += entry["size"]
    if covered != set(locked):
        raise LockError(f"the wheelhouse in {folder} lacks {', '.join(sorted(set(locked) - covered))}: {fix}")
    return Wheelhouse(
        path=folder,
        platform=platform,
        lock_sha256=lock_hash,
        manifest_sha256=sha256_file(manifest_path),
        wheel_count=len(manifest["wheels"]),
        size_bytes=size,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="scripts/runtime_deps.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lock = commands.add_parser("lock", help="compile spark_job/requirements.in into every platform's lock")
    lock.add_argument("--uv", default=str(Path(sys.executable).with_name("uv")), help="the uv executable")
    for name, text in (("wheelhouse", "download the locked wheels"), ("check", "is the wheelhouse current")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
        sub.add_argument("--dest", type=Path, help="default: build/wheelhouse/<arch>")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            for platform in PLATFORMS.values():
                path = compile_lock(platform, uv=args.uv)
                log.info("%s: %d packages", path.name, len(read_lock(platform)))
            return 0
        platform = PLATFORMS[args.arch]
        dest = args.dest or platform.wheelhouse_dir()
        if args.command == "wheelhouse":
            build_wheelhouse(platform, dest)
        house = verify_wheelhouse(platform, dest)
        log.info(
            "wheelhouse %s: %d wheels, %.1f MB, lock sha256 %s",
            dest, house.wheel_count, house.size_bytes / 1e6, house.lock_sha256[:12],
        )  # fmt: skip
        return 0
    except LockError as exc:
        log.error("%s", exc)
        return 1
    except subprocess.CalledProcessError as exc:
        log.error("%s exited %d", " ".join(map(str, exc.cmd[:4])), exc.returncode)
        return 1


if __name__ == "__main__":
    sys.exit(main())
