"""Pure unit tests, one behaviour each, no model: k selection, paths and URIs, decode reasons, the command
line, the engine thread rule, label extraction on a tiny DataFrame."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_job.driver.config import build_parser, config_from_args
from spark_job.driver.featurize import (
    RANGE_SAMPLE_HINT,
    RANGE_SAMPLE_PATHS,
    range_sampling,
    task_count,
)
from spark_job.driver.listing import folder_files, is_image, with_label
from spark_job.driver.plan import engine_threads
from spark_job.driver.reduce import choose_k
from spark_job.driver.storage import join, normalize
from spark_job.workers.decode import describe_decode_error
from spark_job.workers.files import (
    READ_THREADS,
    copied_name,
    copy_whole_files,
    filesystem,
    is_hidden,
    read_all,
)


@pytest.mark.parametrize(
    ("spectrum", "target", "k"),
    [
        ([0.5, 0.3, 0.2], 0.5, 1),  # reached exactly by the first component
        ([0.5, 0.3, 0.2], 0.51, 2),
        ([0.5, 0.3, 0.2], 0.8, 2),
        ([0.5, 0.3, 0.2], 0.95, 3),
        ([0.5, 0.3, 0.2], 1.0, 3),  # all of it
        ([0.6, 0.3, 0.1 - 1e-12], 1.0, 3),  # a total a hair under 1.0 still reaches 1.0
        ([0.25] * 4, 1.5, 4),  # never more components than there are
    ],
)
def test_choose_k_is_the_smallest_reaching_the_target(spectrum: list[float], target: float, k: int) -> None:
    assert choose_k(np.array(spectrum), target) == k


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:/data/in/a b/c.jpg", "/data/in/a b/c.jpg"),
        ("file:///data/Pommes rôties/x.jpg", "/data/Pommes rôties/x.jpg"),
        ("s3://bucket/data/Test/Orange/1.jpg", "bucket/data/Test/Orange/1.jpg"),
        ("s3a://bucket/data/a b.jpg", "bucket/data/a b.jpg"),
        ("/data/out/features", "/data/out/features"),
    ],
)
def test_listed_uris_map_to_pyarrow_paths(uri: str, path: str) -> None:
    assert filesystem(uri)[1] == path


def test_unknown_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported file system"):
        filesystem("hdfs://namenode/data")


@pytest.mark.parametrize(
    ("relative", "hidden"),
    [("Kiwi/a.jpg", False), ("_tmp/a.jpg", True), ("Kiwi/.DS_Store", True), ("Kiwi/_a.jpg", True),
     ("Kiwi/a.jpg._COPYING_", True), ("a_b/c.d.jpg", False)],
)  # fmt: skip
def test_hidden_files_follow_hadoops_convention(relative: str, hidden: bool) -> None:
    assert is_hidden(relative) is hidden


def test_images_by_extension(spark) -> None:
    paths = ["a.jpg", "A.JPG", "x/y.jpeg", "p.PNG", "notes.txt", "jpg", "a.jpg.txt", "a.gif"]
    rows = (
        spark.createDataFrame([(p,) for p in paths], "path string").select(is_image(F.col("path"))).collect()
    )
    assert [row[0] for row in rows] == [True, True, True, True, False, False, False, False]


def test_normalize_and_join(tmp_path) -> None:
    assert normalize("s3://bucket/runs/x/") == "s3://bucket/runs/x"
    assert normalize("file:/data/in/") == "file:/data/in"
    assert normalize("relative/dir") == str(tmp_path.cwd() / "relative" / "dir")
    assert join("s3://bucket/runs/x/", "fit", "model") == "s3://bucket/runs/x/fit/model"


def test_folders_share_listing_tasks_up_to_one_per_core(spark: SparkSession, tmp_path) -> None:
    """Five folders on two cores: two tasks list them all (a task per folder cost more than its listing)."""
    folders = []
    for i in range(5):
        folder = tmp_path / f"class{i}"
        folder.mkdir()
        for j in range(i + 1):
            (folder / f"{j}.jpg").write_bytes(b"x" * j)
        folders.append("file:" + str(folder))
    listed = folder_files(spark, folders)
    assert listed.rdd.getNumPartitions() == spark.sparkContext.defaultParallelism == 2
    assert listed.count() == 15
    assert listed.where(F.col("path").endswith("/class4/4.jpg")).first()["length"] == 4


def test_range_sampling_bounds_the_paths_sampled_on_the_driver(spark: SparkSession) -> None:
    """Spark's range partitioning collects 3 x hint x tasks paths on the driver: with the hint set while
    the shuffle runs, that stays within RANGE_SAMPLE_PATHS from 8,000 to 20M photos (Spark's default hint
    of 100 would sample 3M paths at 10M photos), and a small run keeps the default."""
    before = spark.conf.get(RANGE_SAMPLE_HINT)
    for photos in (8_000, 90_483, 1_000_000, 10_000_000, 20_000_000):
        with range_sampling(spark, photos):
            hint = int(spark.conf.get(RANGE_SAMPLE_HINT))
        assert 3 * hint * task_count(spark, photos) <= RANGE_SAMPLE_PATHS, photos
        assert hint >= 1
        if photos == 8_000:
            assert hint == 100
    assert spark.conf.get(RANGE_SAMPLE_HINT) == before


def test_reads_keep_order_and_the_workers_threads(tmp_path) -> None:
    """read_all: each file's bytes in the order asked, an OSError for one that is missing; its threads are
    started once per worker and kept, not a pool per batch."""
    import threading

    paths = []
    for i in range(40):
        (tmp_path / f"{i}.jpg").write_bytes(str(i).encode())
        paths.append("file:" + str(tmp_path / f"{i}.jpg"))
    contents = read_all([*paths, "file:" + str(tmp_path / "missing.jpg")])
    assert contents[:40] == [str(i).encode() for i in range(40)]
    assert isinstance(contents[40], OSError)
    for _ in range(3):
        assert read_all(paths) == contents[:40]
    readers = [t for t in threading.enumerate() if t.name.startswith("fruits-read")]
    assert 0 < len(readers) <= READ_THREADS  # alive after the calls returned, and bounded


def test_whole_store_files_are_copied_under_distinct_visible_names(tmp_path) -> None:
    """The executors' copy of store files into features/: each source (as Spark spells a file's URI,
    percent-encoded) lands once under a name of its own, and the rows they hold are counted."""
    import pyarrow as pa

    sources = []
    for run in ("run=a", "run=b"):
        folder = tmp_path / "st re" / run
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(run.encode())  # the same name in two runs
        sources.append("file://" + str(folder / "part-0.parquet").replace(" ", "%20"))
    destination = "file:" + str(tmp_path / "out" / "features")
    batch = pa.RecordBatch.from_pydict({"file": sources, "rows": [3, 4]})
    (counted,) = list(copy_whole_files(destination)([batch]))
    assert counted.column("rows").to_pylist() == [7]
    copied = {p.name: p.read_bytes() for p in (tmp_path / "out" / "features").iterdir()}
    assert copied == {copied_name(sources[0]): b"run=a", copied_name(sources[1]): b"run=b"}
    assert all(name.startswith("part-") and name.endswith(".parquet") for name in copied)


def test_decode_and_reread_reasons() -> None:
    from PIL import UnidentifiedImageError

    assert describe_decode_error(OSError("x"), b"") == "empty file (0 bytes)"
    assert describe_decode_error(UnidentifiedImageError("cannot identify"), b"abc").startswith(
        "not a decodable image (3 bytes)"
    )
    assert describe_decode_error(OSError("image file is truncated"), b"abcd").startswith(
        "truncated image data (4 bytes)"
    )
    assert describe_decode_error(ValueError("odd"), b"ab") == "decode failed (ValueError): odd"
    from spark_job.workers.featurize_map import _reason

    assert _reason(b"", 8) == "empty file (0 bytes)"
    assert _reason(FileNotFoundError(2, "gone"), 8).startswith("could not be read:")
    assert _reason(b"not an image", 8).startswith("not a decodable image (12 bytes)")


def test_command_line_to_config() -> None:
    parser = build_parser()
    fit = config_from_args(parser.parse_args(["fit", "--input", "i", "--output", "o"]))
    assert (fit.variance, fit.components, fit.image_size, fit.weights) == (0.95, None, 224, "imagenet")
    assert fit.engine_threads is None and fit.batch_size == 32 and fit.engine == "litert"
    tf = config_from_args(
        parser.parse_args(["fit", "--input", "i", "--output", "o", "--engine", "tensorflow"])
    )
    assert tf.engine == "tensorflow"
    fixed = config_from_args(parser.parse_args(["fit", "--input", "i", "--output", "o", "--components", "7"]))
    assert (fixed.variance, fixed.components) == (None, 7)
    for flag in ("--engine-threads", "--tf-threads"):  # --tf-threads: the option's earlier name
        argv = ["transform", "--model", "m", "--input", "i", "--output", "o", flag, "3"]
        transform = config_from_args(parser.parse_args(argv))
        assert (transform.engine_threads, transform.weights, transform.variance) == (3, None, None)
        assert transform.engine is None  # transform: the engine the model was fitted with


def test_engine_threads_one_rule(spark: SparkSession) -> None:
    assert engine_threads(spark, None) == int(spark.conf.get("spark.task.cpus", "1")) == 1
    assert engine_threads(spark, 3) == 3


def test_no_cluster_setting_or_environment_sets_inference_threads(monkeypatch, spark: SparkSession) -> None:
    from stacks.spark_settings import BASE_SPARK_DEFAULTS, SPARK_ENV_EXPORTS

    settings = {**BASE_SPARK_DEFAULTS, **SPARK_ENV_EXPORTS}
    assert not [key for key in settings if "INTRAOP" in key or "INTEROP" in key]
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "4")  # once a second channel; read nowhere now
    assert engine_threads(spark, None) == 1


def test_label_is_the_top_folder_under_the_input(spark: SparkSession) -> None:
    root = "file:/data/in put"
    paths = [f"{root}/Orange/1.jpg", f"{root}/Pommes rôties/a/b/2.jpg", f"{root}/flat.jpg"]
    df = with_label(spark.createDataFrame([(p,) for p in paths], "path string"), root + "/")
    assert [r["label"] for r in df.orderBy("path").collect()] == ["Orange", "Pommes rôties", None]


def test_conversion_cache_falls_back_to_a_folder_that_outlives_the_run(monkeypatch, tmp_path) -> None:
    import tempfile

    from spark_job.driver.plan import conversion_cache

    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path / "cache"))
    assert conversion_cache(str(tmp_path / "work")) == str(tmp_path / "cache")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("FRUITS_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    per_user = tmp_path / "tmp" / f"fruits-pipeline-{os.getuid()}"
    # The same folder for every run: a session's later runs ship their model from the same path.
    assert (
        conversion_cache(str(tmp_path / "work")) == conversion_cache(str(tmp_path / "other")) == str(per_user)
    )
    assert per_user.stat().st_mode & 0o777 == 0o700
    per_user.chmod(0o777)  # as if someone else had made it first, for all to write into
    assert conversion_cache(str(tmp_path / "work")) == str(tmp_path / "work")
    per_user.rmdir()
    per_user.symlink_to(tmp_path / "cache")
    assert conversion_cache(str(tmp_path / "work")) == str(tmp_path / "work")
    per_user.unlink()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "file" / "tmp"))
    assert conversion_cache(str(tmp_path / "work")) == str(tmp_path / "work")


def test_shipped_model_replaces_a_copy_cut_short_and_reuses_an_intact_one(tmp_path) -> None:
    import hashlib

    from spark_job.driver.plan import shipped_model

    model = tmp_path / "cache" / "mobilenet.tflite"
    model.parent.mkdir()
    model.write_bytes(b"model bytes " * 1000)
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    shipped = Path(shipped_model(str(model), sha, str(tmp_path / "cache")))
    assert shipped.name == f"mobilenet_{sha[:16]}.tflite" and shipped.read_bytes() == model.read_bytes()
    shipped.write_bytes(model.read_bytes()[:100])  # a copy cut short, under the final name
    assert Path(shipped_model(str(model), sha, str(tmp_path / "cache"))).read_bytes() == model.read_bytes()
    damaged = bytearray(model.read_bytes())
    damaged[500] ^= 0xFF  # the same length, one byte changed
    shipped.write_bytes(bytes(damaged))
    assert Path(shipped_model(str(model), sha, str(tmp_path / "cache"))).read_bytes() == model.read_bytes()
    before = shipped.stat().st_ino
    assert shipped_model(str(model), sha, str(tmp_path / "cache")) == str(shipped)
    assert shipped.stat().st_ino == before  # intact: not written again
    assert sorted(p.name for p in model.parent.iterdir()) == sorted(
        [model.name, shipped.name]
    )  # no temp file
