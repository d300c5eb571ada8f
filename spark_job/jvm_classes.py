"""The local driver JVM's class archive (class-data sharing): Spark's classes mapped from one file at start
instead of being loaded, parsed and verified again by every local run.

A local run starts a fresh JVM, and each code path's first pass loads its classes: ~0.5 s of a 2,000-image
featurize stage here and ~0.4 s of the features store's lookup (measured 2026-12-02, 2 vCPUs, JDK 17).
JDK 17 writes an archive of the classes a JVM loaded only when that JVM exits (-XX:ArchiveClassesAtExit),
and a JVM that maps a truncated archive crashes (SIGBUS, even under the default -Xshare:auto). So:

- `python -m spark_job.jvm_classes` (run by `make venv`) makes it once: a small local run of the stages'
  code paths (listing, decoding in the Python workers, Parquet, the features store, PCA and the probe) with a
  stand-in engine, through spark-submit, which returns only after its JVM has exited and so has written
  the whole file. Then a JVM started with -Xshare:on maps the file or exits with an error; only a file that
  passed is renamed into place, atomically. Nothing else writes that name.
- A local session (spark_job.session) passes `-XX:SharedArchiveFile=` when the archive for this pyspark,
  this java and these JVM options exists. The JVM checks it again at start and, if it does not match, warns
  once and runs without it. Under spark-submit (EMR) nothing changes: YARN starts those JVMs.
- FRUITS_JVM_CLASSES=off, or a JVM agent in JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS, _JAVA_OPTIONS or
  SPARK_SUBMIT_OPTS, starts local runs without it (JDK 17.0.15 crashed when Flight Recorder's class hook
  met the archive).

The archive is ~200 MB, in the job's cache folder (spark_job.litert.default_cache_dir) under jvm/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from spark_job.names import FEATURE_DIM

log = logging.getLogger(__name__)

# The driver JVM options of every local run. The quick compiler only: the JVM here lists, reads small files
# and writes Parquet, and its optimizing compiler (C2) takes CPU from the Python workers: 8,000 images at
# 397-403 img/s with C2 against 441-444 with C1 alone (LiteRT, 2 vCPUs, 2026-12-02).
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"
# Bumped when the training run changes what it loads (3: the stage maps with mapInArrow; 4: features are
# written as two-level lists): older archives are then left unused.
ARCHIVE_RECIPE = 4
# Each region's checksum is written into the archive and checked when the -Xshare:on JVM maps it: a file
# cut short anywhere fails the check, not only one cut before the pages a short start happens to touch.
VERIFY_OPTION = "-XX:+VerifySharedSpaces"
STALE_WORK_S = 3600  # a making of the archive this old was killed: its folder is removed
TRAINING_MASTER = "local[2]"
SUBMIT_TIMEOUT_S = 600


def spark_home() -> Path:
    """Where spark-submit and Spark's jars are: $SPARK_HOME, else the pip-installed pyspark package (as
    pyspark's own launcher finds it)."""
    import pyspark

    return Path(os.environ.get("SPARK_HOME") or Path(pyspark.__file__).parent)


def java_executable() -> Path | None:
    """The java spark-submit runs: $JAVA_HOME/bin/java, else java on PATH (as bin/spark-class picks it)."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).exists() else None


def archive_key(pyspark_version: str, java: Path, jars: Sequence[Path], options: str) -> str:
    """What an archive was made for: a JVM maps only an archive of its own build and class path, whose jars
    it checks by size and modification time (a reinstalled pyspark has new ones)."""

    def size_and_time(path: Path) -> list[int]:
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    made_for = {
        "recipe": ARCHIVE_RECIPE,
        "pyspark": pyspark_version,
        "java": [str(java), *size_and_time(java)],
        "jars": sorted([jar.name, *size_and_time(jar)] for jar in jars),
        "options": options,
    }
    return hashlib.sha256(json.dumps(made_for, sort_keys=True).encode()).hexdigest()[:16]


def archive_path() -> Path | None:
    """This machine's archive path (made or not); None without a java to key it by."""
    import pyspark

    from spark_job.litert import default_cache_dir

    java = java_executable()
    if java is None:
        return None
    jars = list((spark_home() / "jars").glob("*.jar"))
    key = archive_key(pyspark.__version__, java, jars, LOCAL_JVM_OPTIONS)
    return Path(default_cache_dir()) / "jvm" / f"spark-{pyspark.__version__}-{key}.jsa"


# Set to "off": local runs start without the archive.
SWITCH_ENV = "FRUITS_JVM_CLASSES"
# Where a JVM agent would come from. JDK 17.0.15 crashed (SIGSEGV in check_shared_class_file_load_hook) when
# a class-file-load hook (here Flight Recorder's profiling) met this archive, so an agent turns it off.
AGENT_ENVS = ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "SPARK_SUBMIT_OPTS")
AGENT_OPTIONS = ("-javaagent", "-agentlib", "-agentpath", "FlightRecord")


def archive_wanted(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get(SWITCH_ENV, "").lower() == "off":
        return False
    return not any(option in env.get(name, "") for name in AGENT_ENVS for option in AGENT_OPTIONS)


def local_jvm_options() -> str:
    """The driver JVM options of a local run: LOCAL_JVM_OPTIONS, and the class archive when it is made (and
    neither FRUITS_JVM_CLASSES=off nor a JVM agent is in the environment)."""
    archive = archive_path() if archive_wanted() else None
    if archive is not None and archive.is_file():
        return f"{LOCAL_JVM_OPTIONS} -XX:SharedArchiveFile={archive}"
    return LOCAL_JVM_OPTIONS


# ---------------------------------------------------------------------------------------------------------
# Making the archive
# ---------------------------------------------------------------------------------------------------------


def make_archive(force: bool = False) -> Path | None:
    """Make this machine's archive unless it exists; its path, or None (logged why) when none can be made."""
    target = archive_path()
    if target is None:
        log.warning("no java found (JAVA_HOME, PATH): no class archive")
        return None
    if target.is_file() and not force:
        log.info("class archive already made: %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(target.parent)
    with tempfile.TemporaryDirectory(prefix=WORK_PREFIX, dir=target.parent) as tmp:
        dumped = Path(tmp) / target.name
        if not _dump(dumped, Path(tmp) / "run"):
            return None
        if not maps_whole(dumped):
            log.warning("the class archive written by the training run does not map: not kept")
            return None
        dumped.replace(target)
    made_for(target).write_text(json.dumps({"spark_home": str(spark_home())}) + "\n")
    log.info("class archive made: %s (%.0f MB)", target, target.stat().st_size / 1e6)
    remove_superseded(target)
    return target


def made_for(archive: Path) -> Path:
    """The note beside an archive: which Spark installation it was made for."""
    return archive.with_suffix(".json")


def remove_superseded(current: Path) -> list[Path]:
    """Remove the other archives of this Spark installation (made before a reinstall) and those of removed
    ones (a deleted venv), ~200 MB each; archives of other live installations stay. A JVM that has one
    mapped keeps it (an unlinked file stays mapped); one starting without it runs without an archive."""
    removed = []
    for archive in current.parent.glob("spark-*.jsa"):
        note = made_for(archive)
        if archive == current or not note.is_file():
            continue
        try:
            home = Path(json.loads(note.read_text())["spark_home"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if home == spark_home() or not (home / "jars").is_dir():
            archive.unlink(missing_ok=True)
            note.unlink(missing_ok=True)
            removed.append(archive)
    if removed:
        log.info("removed superseded class archives: %s", ", ".join(p.name for p in removed))
    return removed


WORK_PREFIX = "fruits-jvm-classes-"


def _remove_stale_work(folder: Path) -> None:
    import time

    for work in folder.glob(f"{WORK_PREFIX}*"):
        if work.is_dir() and time.time() - work.stat().st_mtime > STALE_WORK_S:
            shutil.rmtree(work, ignore_errors=True)


def _submit_env() -> dict[str, str]:
    """This environment for the JVMs started here, without JVM agents (see archive_wanted)."""
    repo = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENVS}
    return {**env, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": path}


def _crash_options(folder: str) -> str:
    """A crashing JVM reports into `folder` (not the caller's working directory) and dumps no core."""
    return f"-XX:-CreateCoredumpOnCrash -XX:ErrorFile={folder}/hs_err_%p.log"


def _run(command: list[str], env: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str] | None:
    """Run a spark-submit in its own process group, all of it killed on timeout (its Python driver and
    daemon too); None then."""
    with subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=SUBMIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            log.warning("%s took over %d s: stopped", command[1], SUBMIT_TIMEOUT_S)
            return None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _dump(archive: Path, workdir: Path) -> bool:
    """The training run, through spark-submit: it returns once its JVM has exited, archive written."""
    workdir.mkdir(parents=True, exist_ok=True)
    dump = f"{VERIFY_OPTION} -XX:ArchiveClassesAtExit={archive}"
    options = f"{LOCAL_JVM_OPTIONS} {dump} {_crash_options(str(workdir))}"
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        TRAINING_MASTER,
        "--driver-java-options",
        options,
        __file__,
        "--train",
        str(workdir),
    ]
    done = _run(command, _submit_env(), str(workdir))
    if done is None:
        return False
    if done.returncode != 0 or not archive.is_file():
        log.warning("class archive training run failed (%d): %s", done.returncode, done.stderr[-2000:])
        return False
    return True


def maps_whole(archive: Path) -> bool:
    """Whether a JVM started as a local run starts (spark-submit's class path) maps the archive: with
    -Xshare:on a JVM that cannot map it, or whose region checksums do not match (VERIFY_OPTION), exits with
    an error instead of going on."""
    with tempfile.TemporaryDirectory(prefix="fruits-jvm-check-") as crash_dir:  # a crash's report goes here
        options = (
            f"{LOCAL_JVM_OPTIONS} -Xshare:on {VERIFY_OPTION} -XX:SharedArchiveFile={archive} "
            f"{_crash_options(crash_dir)}"
        )
        done = _run(
            [str(spark_home() / "bin" / "spark-submit"), "--version"],
            {**_submit_env(), "SPARK_SUBMIT_OPTS": options},
            crash_dir,
        )
    if done is None:
        return False
    if done.returncode != 0:
        log.info("archive %s does not map (%d): %s", archive, done.returncode, done.stderr[-1000:])
    return done.returncode == 0


# ---------------------------------------------------------------------------------------------------------
# The training run (in spark-submit's Python driver)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingEngineSpec:
    """A stand-in for the real engine: the JVM's work (read, Arrow, Parquet) is the same, no model needed."""

    name: ClassVar[str] = "jvm-classes-training"
    image_size: int = 8

    def build(self) -> TrainingEngine:
        return TrainingEngine(self.image_size)


class TrainingEngine:
    """Features that differ per image (seeded by its pixels), so that PCA and the probe have work to do."""

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size

    def featurize(self, contents: Sequence[bytes | None]) -> tuple[np.ndarray, list[Exception | None]]:
        from spark_job.engine import featurize_decoded

        return featurize_decoded(contents, self.image_size, self.features)

    @staticmethod
    def features(images: np.ndarray) -> np.ndarray:
        seeds = [zlib.crc32(image.tobytes()) for image in images]
        return np.asarray([np.random.default_rng(s).random(FEATURE_DIM) for s in seeds], dtype=np.float32)


def _write_images(folder: Path, count: int, start: int = 0) -> None:
    from PIL import Image

    for i in range(start, start + count):
        label = folder / ("Apple" if i % 2 else "Kiwi")
        label.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 100), (i * 7 % 256, 90, 200 - i)).save(label / f"{i}.jpg", format="JPEG")


def train(workdir: Path) -> None:
    """The stages' code paths on a few generated images: with rejects, with a features store (twice: the
    second run reuses, appends and copies store files), then PCA, the probe and their persistence."""
    from dataclasses import replace

    from spark_job.config import JobConfig
    from spark_job.features_store import new_run_id, store_featurize_stage
    from spark_job.featurize import featurize_stage
    from spark_job.mobilenet import ResolvedWeights
    from spark_job.plan import RunPlan
    from spark_job.probe import fit_probe
    from spark_job.records import EngineRecord
    from spark_job.reduce import fit_pca, project
    from spark_job.session import spark_session
    from spark_job.timings import Timings

    images = workdir / "images"
    _write_images(images, 24)
    (images / "Kiwi" / "broken.jpg").write_bytes(b"not a jpeg")
    (images / "Kiwi" / "empty.jpg").write_bytes(b"")
    cfg = JobConfig(mode="fit", input=str(images), output=str(workdir / "out"), master=TRAINING_MASTER)
    spark = spark_session(cfg)
    plan = RunPlan(
        mode="fit",
        input=str(images),
        output=str(workdir / "out"),
        overwrite=True,
        image_size=8,
        weights=ResolvedWeights(source="none", local_path=__file__, sha256="0" * 64),
        engine_threads=1,
        batch_size=8,
        engine=TrainingEngineSpec(),
        engine_record=EngineRecord(name="litert", version=""),
        engine_files=(),
    )
    plain = featurize_stage(spark, plan, Timings())
    store = str(workdir / "store")
    store_featurize_stage(
        spark, replace(plan, output=str(workdir / "s1")), store, new_run_id("fit"), Timings()
    )
    _write_images(images, 6, start=24)
    stage, _ = store_featurize_stage(
        spark, replace(plan, output=str(workdir / "s2")), store, new_run_id("fit"), Timings()
    )
    fitted = fit_pca(stage.features, 0.9, None)
    projected = project(fitted.reducer, plain.features)
    projected.write.mode("overwrite").parquet(str(workdir / "pca"))
    fitted.reducer.write().overwrite().save(str(workdir / "reducer"))
    probe = fit_probe(spark.read.parquet(str(workdir / "pca")))
    if probe is not None:
        probe.write().overwrite().save(str(workdir / "probe"))
    spark.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spark_job.jvm_classes",
        description="Make the local driver JVM's class archive (once per pyspark, java and JVM options).",
    )
    parser.add_argument("--force", action="store_true", help="make it again even if it exists")
    parser.add_argument("--train", metavar="DIR", help=argparse.SUPPRESS)  # the run inside spark-submit
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.train:
        train(Path(args.train))
        return 0
    made = make_archive(force=args.force)
    # Not an error when none can be made (no base archive in this JDK, no java): runs just load classes.
    print(made if made is not None else "no class archive: local runs load Spark's classes as they start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
