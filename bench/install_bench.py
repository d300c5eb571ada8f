"""`make bench-install`: a node's bootstrap from the shipped wheelhouse vs the same lock from PyPI.

Both install the job's lock into a fresh venv (what /usr/bin/python3.11 is on a new node), in one
invocation, alternating:
  wheelhouse  bootstrap/install_python_deps.sh LOCK <wheelhouse.zip>, as a node runs it (unzip, pip
              --no-index --require-hashes, import check), in a network namespace with no route out;
  pypi        pip install --no-cache-dir --require-hashes -r LOCK from https://pypi.org, what a node did
              before the wheelhouse (through the NAT), without the import check.
Last line: `install_time_ratio_wheelhouse_vs_pypi=<wheelhouse s / pypi s>` (medians).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from stacks.runtime_deps import PLATFORMS, verify_wheelhouse

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bootstrap" / "install_python_deps.sh"


def fresh_venv(root: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    return root / "bin" / "python"


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench.install_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    target = PLATFORMS[platform.machine()]
    house = verify_wheelhouse(target, target.wheelhouse_dir(REPO), root=REPO)
    lock = target.lock_path(REPO)
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    times: dict[str, list[float]] = {"wheelhouse": [], "pypi": []}
    with tempfile.TemporaryDirectory(prefix="install-bench-") as tmp:
        root = Path(tmp)
        archive = root / "wheelhouse.zip"
        with zipfile.ZipFile(archive, "w") as out:  # as cdk deploy zips the folder asset
            for path in sorted(house.path.iterdir()):
                out.write(path, path.name)
        shims = root / "bin"
        shims.mkdir()
        (shims / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
        (shims / "sudo").chmod(0o755)
        for repeat in range(args.repeats):
            python = fresh_venv(root / f"wheelhouse-{repeat}")
            node_env = env | {"FRUITS_PYTHON": str(python), "PATH": f"{shims}:{env['PATH']}", "TMPDIR": tmp}
            times["wheelhouse"].append(
                timed([*unshare, "bash", str(SCRIPT), str(lock), str(archive)], node_env)
            )
            python = fresh_venv(root / f"pypi-{repeat}")
            pip = [str(python), "-m", "pip", "--isolated", "install", "--quiet", "--no-cache-dir"]
            pip += ["--index-url", "https://pypi.org/simple", "--require-hashes", "-r", str(lock)]
            times["pypi"].append(timed(pip, env))
            for kind in times:
                shutil.rmtree(root / f"{kind}-{repeat}")
            log.info(
                "repeat %d: wheelhouse %.1f s, pypi %.1f s",
                repeat + 1,
                times["wheelhouse"][-1],
                times["pypi"][-1],
            )
    wheelhouse_s, pypi_s = statistics.median(times["wheelhouse"]), statistics.median(times["pypi"])
    log.info(
        "%s, %s, %d CPUs; %d wheels, %.0f MB; median of %d: wheelhouse %.1f s, pypi %.1f s",
        datetime.now(UTC).strftime("%Y-%m-%d"), platform.machine(), os.cpu_count(), house.wheel_count,
        house.size_bytes / 1e6, args.repeats, wheelhouse_s, pypi_s,
    )  # fmt: skip
    print(f"install_time_ratio_wheelhouse_vs_pypi={wheelhouse_s / pypi_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
