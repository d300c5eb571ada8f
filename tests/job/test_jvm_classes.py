"""The local driver JVM's class archive (spark_job/jvm_classes.py): made whole or not at all, then used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_job import jvm_classes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_archive_is_made_for_one_pyspark_java_class_path_and_options(tmp_path: Path) -> None:
    java, a_jar, b_jar = (tmp_path / name for name in ("java", "a.jar", "b.jar"))
    for path in (java, a_jar, b_jar):
        path.write_bytes(b"x")
    opts = "-XX:TieredStopAtLevel=1"
    key = jvm_classes.archive_key("3.5.9", java, [a_jar, b_jar], opts)
    assert key == jvm_classes.archive_key("3.5.9", java, [b_jar, a_jar], opts)
    others = {
        jvm_classes.archive_key("3.5.8", java, [a_jar, b_jar], opts),
        jvm_classes.archive_key("3.5.9", java, [a_jar], opts),
        jvm_classes.archive_key("3.5.9", java, [a_jar, b_jar], ""),
    }
    b_jar.write_bytes(b"a reinstalled jar")  # same name: the JVM would refuse the archive
    others.add(jvm_classes.archive_key("3.5.9", java, [a_jar, b_jar], opts))
    java.write_bytes(b"another java")
    others.add(jvm_classes.archive_key("3.5.9", java, [a_jar, b_jar], opts))
    assert key not in others and len(others) == 5


def test_a_local_run_passes_the_archive_only_once_it_is_made(cache: Path) -> None:
    assert jvm_classes.local_jvm_options() == jvm_classes.LOCAL_JVM_OPTIONS
    archive = jvm_classes.archive_path()
    assert archive is not None and archive.is_relative_to(cache)
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"made")
    assert jvm_classes.local_jvm_options() == f"-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile={archive}"


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, True),
        ({"FRUITS_JVM_CLASSES": "off"}, False),
        ({"FRUITS_JVM_CLASSES": "OFF"}, False),
        ({"JAVA_TOOL_OPTIONS": "-javaagent:/opt/agent.jar"}, False),
        ({"SPARK_SUBMIT_OPTS": "-XX:StartFlightRecording=filename=x.jfr"}, False),
        ({"_JAVA_OPTIONS": "-agentlib:jdwp=transport=dt_socket"}, False),
        ({"JDK_JAVA_OPTIONS": "-Xmx2g"}, True),
    ],
)
def test_the_archive_is_left_out_when_switched_off_or_under_a_jvm_agent(
    environ: dict[str, str], wanted: bool
) -> None:
    assert jvm_classes.archive_wanted(environ) is wanted


def test_switched_off_a_made_archive_is_not_passed(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = jvm_classes.archive_path()
    assert archive is not None
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"made")
    monkeypatch.setenv("FRUITS_JVM_CLASSES", "off")
    assert jvm_classes.local_jvm_options() == jvm_classes.LOCAL_JVM_OPTIONS


def test_no_java_no_archive(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jvm_classes, "java_executable", lambda: None)
    assert jvm_classes.archive_path() is None and jvm_classes.make_archive() is None
    assert jvm_classes.local_jvm_options() == jvm_classes.LOCAL_JVM_OPTIONS


def test_archives_of_a_reinstalled_or_removed_spark_are_removed_others_stay(tmp_path: Path) -> None:
    def archive(name: str, home: Path | None) -> Path:
        path = tmp_path / f"spark-3.5.9-{name}.jsa"
        path.write_bytes(b"archive")
        if home is not None:
            jvm_classes.made_for(path).write_text(json.dumps({"spark_home": str(home)}))
        return path

    other_venv = tmp_path / "other-venv" / "pyspark"
    (other_venv / "jars").mkdir(parents=True)
    current = archive("new", jvm_classes.spark_home())
    before_reinstall = archive("old", jvm_classes.spark_home())
    of_removed_venv = archive("gone", tmp_path / "deleted-venv" / "pyspark")
    of_other_venv = archive("other", other_venv)
    unknown = archive("unknown", None)
    removed = jvm_classes.remove_superseded(current)
    assert sorted(removed) == sorted([before_reinstall, of_removed_venv])
    assert sorted(tmp_path.glob("*.jsa")) == sorted([current, of_other_venv, unknown])
    assert not jvm_classes.made_for(before_reinstall).exists()


@pytest.mark.slow
def test_a_file_that_is_not_a_whole_archive_does_not_map(tmp_path: Path) -> None:
    """The check before an archive is kept: JDK 17 crashes (SIGBUS) on a truncated one, even by default."""
    junk = tmp_path / "junk.jsa"
    junk.write_bytes(os.urandom(1 << 20))
    assert not jvm_classes.maps_whole(junk)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real archive, made in a temporary cache by the command `make venv` runs."""
    cache = tmp_path_factory.mktemp("jvm-cache")
    env = {**os.environ, "FRUITS_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "spark_job.jvm_classes"], env=env, capture_output=True, text=True, check=True
    )
    archive = Path(done.stdout.strip().splitlines()[-1])
    assert archive.is_file() and archive.is_relative_to(cache), done.stderr[-2000:]
    return archive


@pytest.mark.slow
def test_the_made_archive_is_whole_and_a_truncated_copy_is_not(made: Path, tmp_path: Path) -> None:
    assert jvm_classes.maps_whole(made)
    # no half-written file left beside it, and the note of what it was made for
    assert sorted(p.name for p in made.parent.iterdir()) == sorted(
        [made.name, made.with_suffix(".json").name]
    )
    whole = made.read_bytes()
    for kept in (len(whole) // 2, len(whole) - 4096):  # half of it, and all but its last page
        truncated = tmp_path / f"{kept}-{made.name}"
        truncated.write_bytes(whole[:kept])
        assert not jvm_classes.maps_whole(truncated), f"{kept} of {len(whole)} bytes mapped"


@pytest.mark.slow
def test_the_job_session_starts_its_jvm_with_the_made_archive(made: Path) -> None:
    """...and maps Spark's classes from it: the JVM's class-load log names the archive as their source."""
    loads = made.parents[2] / "class-load.log"
    env = {
        **os.environ,
        "FRUITS_CACHE_DIR": str(made.parents[1]),
        "PYTHONPATH": str(REPO),
        "JDK_JAVA_OPTIONS": f"-Xlog:class+load=info:file={loads}",  # not an agent: the archive stays in
    }
    probe = Path(__file__).with_name("session_probe.py")
    done = subprocess.run([sys.executable, str(probe)], env=env, capture_output=True, text=True, check=True)
    options = json.loads(done.stdout.strip().splitlines()[-1])["jvm_options"]
    assert f"-XX:SharedArchiveFile={made}" in options
    spark_classes = [
        line for line in loads.read_text().splitlines() if "org.apache.spark.SparkContext " in line
    ]
    assert spark_classes and "shared objects file (top)" in spark_classes[0], spark_classes
