"""Shared fixtures: the real Fruits-360 sample and MobileNetV2 weights in ../shared (never copied here), one
SparkSession (local[2]) and the sample's fit and transform runs, made once per session and used by the job
tests and by the ops tests (real job outputs uploaded to the emulated bucket)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.job_support import run_cli

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = SHARED / "data" / "fruits-360-sample"
WEIGHTS = SHARED / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_no_top_rebuilt.h5"


# Fixtures that put a test in the slow tier: the real MobileNetV2 (the weights, and the sample's runs made
# with them), and the bootstrap script installing wheels into a sandbox venv (tests/bootstrap). `make
# test-fast` (-m "not slow") leaves these tests out; `make test` runs everything.
SLOW_FIXTURES = frozenset({"weights_path", "fit_run", "transform_run", "tiny", "real_install"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that uses the real model or installs packages (directly or through a
    fixture) and every emulated deployment, so none lands in the fast tier by forgetting a marker."""
    for item in items:
        uses_slow_fixture = SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses_slow_fixture or item.get_closest_marker("emulated"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def module_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for one module's large fixtures (a venv with TensorFlow, a staged cloud assembly, an
    emulated bucket: 0.4-2 GB each), removed when the module ends unless one of its tests failed. Kept to the
    session's end they added up to ~4 GB of /tmp, and CI's disk ran out."""
    failed_before = request.session.testsfailed
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield folder
    if request.session.testsfailed == failed_before:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    assert SAMPLE.is_dir(), f"the shared Fruits-360 sample is missing: {SAMPLE}"
    return SAMPLE


@pytest.fixture(scope="session")
def weights_path() -> Path:
    assert WEIGHTS.is_file(), f"the shared MobileNetV2 weights are missing: {WEIGHTS}"
    return WEIGHTS


@pytest.fixture(scope="session")
def java() -> str:
    """The JVM Spark needs: a clear failure when it is missing, instead of a py4j error in every test."""
    found = shutil.which("java")
    assert found, "no `java` on PATH: Spark local mode needs a JDK (17 or 21)"
    return found


@pytest.fixture(scope="session")
def spark(java: str) -> SparkSession:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("fruits-tests")
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def fit_run(spark, sample_dir, weights_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fit"
    assert (
        run_cli(spark, "fit", "--input", sample_dir / "Training", "--output", out, "--weights", weights_path)
        == 0
    )
    return out


@pytest.fixture(scope="session")
def transform_run(spark, sample_dir, weights_path, fit_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "transform"
    code = run_cli(
        spark,
        "transform",
        "--model",
        fit_run / "model",
        "--input",
        sample_dir / "Test",
        "--output",
        out,
        "--weights",
        weights_path,
    )
    assert code == 0
    return out


@pytest.fixture
def fresh_worker_pool(spark):
    """Python workers of their own (Spark pools workers by environment): none has run an earlier test's
    engine or imported TF for it."""
    import uuid

    environment = spark.sparkContext.environment
    environment["FRUITS_TEST_POOL"] = uuid.uuid4().hex
    yield
    del environment["FRUITS_TEST_POOL"]
