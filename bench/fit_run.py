"""One run of the real job (`python -m spark_job fit|transform ...`) in a child process, measured from
outside.

What a measured run gives (RunMeasurement):
- the whole run: wall seconds from starting the process to its manifest.json (the file's modification
  time), which is what a user waits for; the process's own exit comes a few seconds later (Spark's stop);
- the manifest's per-stage seconds (`timings_s`) and counts;
- the Python driver's peak RSS (VmHWM) when its log says `stage featurize: done`, that is before the
  classifier export imports TensorFlow (which puts a ~1 GB floor under the driver and hides any growth);
- the JVM's peak RSS (the java process the driver starts; in local mode it runs the executors' tasks too),
  polled until it exits, and the largest Python worker's (pyspark.daemon's forks) the same way.

Nothing here imports pyspark: the run is a separate process, as a user starts it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
# The driver's log lines that start and end a stage (spark_job.driver.timings); featurize's end is where
# the driver's peak is read.
STAGE_EVENT = re.compile(r"stage (\w+): (started|done)")
# How often the JVM's and the workers' peaks are read while the run goes on.
POLL_SECONDS = 0.5
STDERR_TAIL_LINES = 60


class RunFailedError(RuntimeError):
    """The job exited non-zero or wrote no manifest: the message has its exit code and log's tail."""


def vm_hwm_mb(pid: int) -> float | None:
    """A process's peak resident set size so far (VmHWM), in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """A process's command name and the fields of /proc/<pid>/stat after it (state first)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces: the fields after the last ')' are fixed.
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def _parent_and_name(pid: int) -> tuple[int, str] | None:
    found = _stat_fields(pid)
    return None if found is None else (int(found[1][1]), found[0])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a live process has used (its own threads, not its children's)."""
    found = _stat_fields(pid)
    return None if found is None else (int(found[1][11]) + int(found[1][12])) / CLOCK_TICKS


def descendants(root: int) -> dict[int, str]:
    """Every live descendant of `root`: pid -> command name (/proc/<pid>/comm)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _parent_and_name(int(entry.name))
            if found is not None:
                children.setdefault(found[0], []).append((int(entry.name), found[1]))
    result: dict[int, str] = {}
    todo = [root]
    while todo:
        for pid, name in children.get(todo.pop(), []):
            result[pid] = name
            todo.append(pid)
    return result


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class PeakWatch:
    """The driver's, the JVM's and the largest Python worker's VmHWM, polled while the driver `root` runs."""

    root: int
    driver_mb: float = 0.0
    jvm_mb: float = 0.0
    worker_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: set[int] = field(default_factory=set)
    _cpu: dict[int, float] = field(default_factory=dict)  # the last CPU seconds read, per process
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of the driver and every descendant, as last read (a process that lived less than a
        poll interval is missed: Spark's processes live for the whole run)."""
        with self._lock:
            return sum(self._cpu.values())

    def cpu_now(self) -> float:
        """The CPU seconds of the whole tree, read now (for a stage's start and end)."""
        self.poll_once()
        return self.cpu_s

    def poll_once(self) -> None:
        self.driver_mb = max(self.driver_mb, vm_hwm_mb(self.root) or 0.0)
        tree = descendants(self.root)
        with self._lock:
            for pid in (self.root, *tree):
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), cpu_seconds(pid) or 0.0)
        for pid, name in tree.items():
            if name == "java":
                self.jvm_mb = max(self.jvm_mb, vm_hwm_mb(pid) or 0.0)
            elif pid in self._workers or "pyspark.daemon" in _cmdline(pid):
                self._workers.add(pid)
                self.worker_mb = max(self.worker_mb, vm_hwm_mb(pid) or 0.0)

    def run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(POLL_SECONDS)

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class RunMeasurement:
    mode: str  # fit or transform
    whole_run_s: float  # start of the process to its manifest.json
    process_s: float  # start of the process to its exit
    timings_s: dict[str, float]  # the manifest's, per stage
    manifest: dict  # the manifest as written
    driver_peak_to_featurize_mb: float  # the Python driver's VmHWM at `stage featurize: done`
    driver_peak_mb: float  # ... at its end (TensorFlow's import included, for fit)
    jvm_peak_mb: float
    worker_peak_mb: float  # the largest Python worker's
    cpu_s: float  # CPU seconds of the driver, the JVM and the Python workers (polled: a lower bound)
    load_before: float  # 1-minute load average at the start and at the end
    load_after: float
    # Per stage, the CPU seconds of every process of the run between the stage's `started` and `done` log
    # lines: what a stage costs, much less sensitive than its wall time to what else the machine runs.
    stage_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return int(self.manifest["images_featurized"])

    @classmethod
    def from_dict(cls, saved: dict) -> RunMeasurement:
        return cls(**saved)


def save_runs(path: Path, runs: Mapping[str, Sequence[RunMeasurement]], **extra: object) -> None:
    """The measurements as JSON (runs by name, and `extra`), to render or record them again later."""
    doc = {"runs": {name: [asdict(run) for run in measured] for name, measured in runs.items()}, **extra}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def load_runs(path: Path) -> tuple[dict[str, list[RunMeasurement]], dict]:
    doc = json.loads(path.read_text())
    runs = {name: [RunMeasurement.from_dict(r) for r in measured] for name, measured in doc["runs"].items()}
    return runs, doc


def job_command(mode: str, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "spark_job", mode, *map(str, args)]


def measure_job_run(command: Sequence[str], output: Path, log_file: Path) -> RunMeasurement:
    """Run `command` (a `python -m spark_job fit|transform ... --output <output>`), measure it as the module
    says, keep its whole log in `log_file`; raise RunFailedError when it fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    load_before = os.getloadavg()[0]
    log.info("running: %s", " ".join(command))
    started = time.time()
    process = subprocess.Popen(
        list(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    watch = PeakWatch(process.pid)
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    driver_at_featurize: float | None = None
    stage_started: dict[str, float] = {}
    stage_cpu: dict[str, float] = {}
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    assert process.stderr is not None
    with log_file.open("w") as saved:
        for line in process.stderr:
            event = STAGE_EVENT.search(line)
            if event and event[1] == "featurize" and event[2] == "done" and driver_at_featurize is None:
                driver_at_featurize = vm_hwm_mb(process.pid)
            if event and event[2] == "started":
                stage_started[event[1]] = watch.cpu_now()
            elif event and event[1] in stage_started:
                stage_cpu[event[1]] = round(watch.cpu_now() - stage_started.pop(event[1]), 2)
            saved.write(line)
            tail.append(line)
    returncode = process.wait()
    process_s = time.time() - started
    watch.stop()
    watcher.join()
    manifest_path = output / "manifest.json"
    if returncode != 0 or not manifest_path.is_file():
        raise RunFailedError(
            f"{' '.join(command[:4])} ... exited {returncode} "
            f"({'no' if not manifest_path.is_file() else 'a'} manifest); log {log_file}:\n" + "".join(tail)
        )
    if driver_at_featurize is None:
        raise RunFailedError(f"no 'stage featurize: done' in the job's log {log_file}")
    manifest = json.loads(manifest_path.read_text())
    return RunMeasurement(
        mode=manifest["mode"],
        whole_run_s=round(manifest_path.stat().st_mtime - started, 3),
        process_s=round(process_s, 3),
        timings_s=dict(manifest["timings_s"]),
        manifest=manifest,
        driver_peak_to_featurize_mb=round(driver_at_featurize, 1),
        driver_peak_mb=round(watch.driver_mb, 1),
        jvm_peak_mb=round(watch.jvm_mb, 1),
        worker_peak_mb=round(watch.worker_mb, 1),
        cpu_s=round(watch.cpu_s, 2),
        load_before=load_before,
        load_after=os.getloadavg()[0],
        stage_cpu_s=stage_cpu,
    )
