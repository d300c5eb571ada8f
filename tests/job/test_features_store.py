"""The features store with the fake engine (no TensorFlow): only unseen images are inferred, features/ holds
exactly the current input, rejects are retried, and the store survives a run killed mid-featurize and two
runs appending at the same time; `store stats` and `store compact`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pyspark.sql import SparkSession

from spark_job.contract.errors import JobFailedError, JobInputError
from spark_job.contract.records import EngineRecord
from spark_job.driver import featurize as featurize_module
from spark_job.driver.featurize import FeaturizeResult, featurize_stage
from spark_job.driver.plan import RunPlan
from spark_job.driver.session import sql_conf
from spark_job.driver.storage import Storage, normalize
from spark_job.driver.store import (
    FILE_SCHEMA,
    IDENTITY,
    FeaturesStore,
    check_store_location,
    featurizer_key,
    new_run_id,
    same_file,
)
from spark_job.driver.store_maintenance import compact_store, format_stats, store_stats
from spark_job.driver.store_stage import check_assembled, store_featurize_stage
from spark_job.driver.timings import Timings
from spark_job.driver.weights import ResolvedWeights
from tests.job.fake_engine import FakeEngineSpec, KillingEngineSpec
from tests.job_support import active_jobs

# Several store runs each (~6 s with Spark local[2]): in `make test`, left out of the fast tier, which keeps
# the store's main behaviour (test_second_run_infers_only_new_and_changed_images) under its minute.
SLOW_TIER = pytest.mark.slow

CLASSES = {"Red": (250, 0, 0), "Green": (0, 250, 0), "Grey": (128, 128, 128)}


def _photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (20, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for cls, colour in CLASSES.items():
        for i in range(4):
            _photo(root / cls / f"{i}_100.jpg", tuple(min(255, c + 3 * i) for c in colour))  # type: ignore[arg-type]
    (root / "Grey" / "bad.png").write_text("not a png")
    (root / "Grey" / "empty.jpg").write_bytes(b"")
    return root


def plan_for(tmp_path: Path, photos: Path, out: str, engine: object = None) -> RunPlan:
    weights = tmp_path / "fake.weights"
    weights.write_bytes(b"shipped to the workers like real weights")
    return RunPlan(
        mode="fit",
        input=str(photos),
        output=normalize(str(tmp_path / out)),
        overwrite=False,
        image_size=8,
        weights=ResolvedWeights(source="fake", local_path=str(weights), sha256="ab" * 32),
        engine_threads=1,
        batch_size=2,
        engine=engine or FakeEngineSpec(image_size=8),  # type: ignore[arg-type]
        engine_record=EngineRecord(name="fake", version="test"),
        engine_files=(str(weights),),
    )


def with_store(spark: SparkSession, plan: RunPlan, store: Path) -> FeaturizeResult:
    result, _ = store_featurize_stage(spark, plan, str(store), new_run_id(plan.mode), Timings())
    return result


def features_of(run: Path) -> pd.DataFrame:
    """features/ by path: label and the colour part of the fake features (features[3] is a worker's pid)."""
    df = pd.read_parquet(run / "features")
    assert not df.path.duplicated().any(), "an identity twice in a run's features/"
    return pd.DataFrame(
        {"label": df.label.values, "rgb": [np.asarray(f[:3]) for f in df.features]}, index=df.path
    ).sort_index()


def parquet_files(folder: Path) -> dict[str, bytes]:
    """Name -> bytes of the Parquet files under folder that hold rows (a task may write an empty one)."""
    import pyarrow.parquet as pq

    return {p.name: p.read_bytes() for p in folder.rglob("*.parquet") if pq.read_metadata(p).num_rows}


def assert_same_features(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.index) == list(b.index)
    assert list(a.label) == list(b.label)
    np.testing.assert_allclose(np.stack(a.rgb), np.stack(b.rgb), atol=1e-6)


@pytest.mark.slow
def test_second_run_infers_only_new_and_changed_images(
    spark: SparkSession, photos: Path, tmp_path: Path
) -> None:
    store = tmp_path / "the st%41re"  # a space and a percent sign: file URIs are percent-encoded by Spark
    first = with_store(spark, plan_for(tmp_path, photos, "run1"), store)
    assert (first.n_features, first.n_inferred, first.n_reused, first.n_rejected) == (12, 12, 0, 2)

    again = with_store(spark, plan_for(tmp_path, photos, "run2"), store)
    assert (again.n_features, again.n_inferred, again.n_reused, again.n_rejected) == (12, 0, 12, 2)
    assert_same_features(features_of(tmp_path / "run2"), features_of(tmp_path / "run1"))
    # Nothing changed: every store file is wanted whole, so features/ is the store's files copied, no row
    # joined or written again.
    copied = parquet_files(tmp_path / "run2" / "features")
    assert copied and all(name.startswith("part-store-") for name in copied), sorted(copied)
    assert sorted(copied.values()) == sorted(parquet_files(store).values())
    # Rejected images are not stored: tried again and reported by every run, with the decoder's reason.
    reasons = {Path(p).name: r for p, r in again.rejects_sample}
    assert reasons["bad.png"].startswith("not a decodable image") and "empty" in reasons["empty.jpg"]

    # Growth: two new photos, one rewritten (new modification time), one deleted.
    _photo(photos / "Blue" / "0_100.jpg", (0, 0, 250))
    _photo(photos / "Red" / "9_100.jpg", (200, 0, 0))
    _photo(photos / "Green" / "0_100.jpg", (10, 200, 10))
    os.utime(photos / "Green" / "0_100.jpg", (1_900_000_000, 1_900_000_000))
    (photos / "Grey" / "3_100.jpg").unlink()
    third = with_store(spark, plan_for(tmp_path, photos, "run3"), store)
    assert (third.n_features, third.n_inferred, third.n_reused, third.n_rejected) == (13, 3, 10, 2)
    assert third.inputs.n_images == third.n_features + third.n_rejected

    # features/ equals a run without the store on the same input.
    scratch = featurize_stage(spark, plan_for(tmp_path, photos, "scratch"), Timings())
    assert scratch.n_features == 13
    with_store_rows, scratch_rows = features_of(tmp_path / "run3"), features_of(tmp_path / "scratch")
    assert_same_features(with_store_rows, scratch_rows)
    assert "Grey/3_100.jpg" not in " ".join(with_store_rows.index)  # the deleted photo dropped out
    # The new photos' file is copied whole; the files holding the deleted and the rewritten photos' old rows
    # are not: their other rows are joined and written.
    names = parquet_files(tmp_path / "run3" / "features")
    assert any(n.startswith("part-store-") for n in names) and any(
        not n.startswith("part-store-") for n in names
    )
    green = with_store_rows.loc[[p for p in with_store_rows.index if p.endswith("Green/0_100.jpg")]]
    np.testing.assert_allclose(green.rgb.iloc[0], (10, 200, 10), atol=3)  # the rewritten file's features


def test_the_featurizer_key_separates_engines_sizes_and_weights(tmp_path: Path, photos: Path) -> None:
    plan = plan_for(tmp_path, photos, "out")
    key = featurizer_key(plan)
    assert key.folder == f"mobilenet_v2_avg-fake-8px-{'ab' * 8}"
    other_weights = RunPlan(**{**plan.__dict__, "weights": ResolvedWeights("x", "/x", "cd" * 32)})
    other_size = RunPlan(**{**plan.__dict__, "image_size": 96})
    assert len({key.folder, featurizer_key(other_weights).folder, featurizer_key(other_size).folder}) == 3


@SLOW_TIER
def test_a_run_killed_mid_featurize_leaves_a_readable_store_the_next_run_reuses(
    spark: SparkSession, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    # The last path, so the last task (tasks hold ranges of paths): one image per task.
    _photo(photos / "Yellow" / "kill.png", (0, 0, 255), size=(2, 2))
    monkeypatch.setattr(featurize_module, "IMAGES_PER_TASK", 1)
    with pytest.raises(Exception, match="killed"):
        with_store(spark, plan_for(tmp_path, photos, "killed", KillingEngineSpec()), store)
    monkeypatch.undo()

    key_store = FeaturesStore(
        spark, Storage(spark), str(store), featurizer_key(plan_for(tmp_path, photos, "x"))
    )
    committed = key_store.rows()
    n_committed = committed.count()
    assert committed.select(*IDENTITY).distinct().count() == n_committed
    # Task by task: all but the killed task and at most one running beside it (local[2]) were committed.
    assert 10 <= n_committed <= 12, n_committed

    resumed = with_store(spark, plan_for(tmp_path, photos, "resumed"), store)
    assert (resumed.n_reused, resumed.n_inferred) == (n_committed, 13 - n_committed)
    assert resumed.n_features == 13
    scratch = featurize_stage(spark, plan_for(tmp_path, photos, "scratch"), Timings())
    assert scratch.n_features == 13
    assert_same_features(features_of(tmp_path / "resumed"), features_of(tmp_path / "scratch"))


@SLOW_TIER
def test_two_runs_appending_at_once_give_no_duplicates(
    spark: SparkSession, photos: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(with_store, spark, plan_for(tmp_path, photos, name), store) for name in ("a", "b")
        ]
        results = [f.result() for f in futures]
    for name, result in zip(("a", "b"), results, strict=True):
        assert result.n_features == 12 and result.n_inferred + result.n_reused == 12
        features_of(tmp_path / name)  # asserts no duplicate identity
    assert_same_features(features_of(tmp_path / "a"), features_of(tmp_path / "b"))

    third = with_store(spark, plan_for(tmp_path, photos, "c"), store)
    assert (third.n_inferred, third.n_reused) == (0, 12)
    features_of(tmp_path / "c")

    (stats,) = store_stats(spark, str(store))
    assert stats.images == 12 and stats.rows >= 12 and len(stats.runs) >= 1
    assert f"{stats.key}: 12 images" in format_stats(str(store), [stats])


@pytest.mark.slow
def test_an_image_stored_twice_reaches_features_once(
    spark: SparkSession, photos: Path, tmp_path: Path
) -> None:
    """Half the identities stored again in a run folder that sorts first: features/ holds each image once,
    and those rows are taken from the folder that sorts first."""
    store = tmp_path / "store"
    first = with_store(spark, plan_for(tmp_path, photos, "a"), store)
    plan = plan_for(tmp_path, photos, "b")
    key_store = FeaturesStore(spark, Storage(spark), str(store), featurizer_key(plan))
    half = key_store.rows().drop("run_id").where("label = 'Red' OR label = 'Green'")
    key_store.append(half.coalesce(1), "0-stored-again")  # sorts before the timestamped run ids
    again = with_store(spark, plan, store)
    assert (again.n_features, again.n_inferred, again.n_reused) == (first.n_features, 0, 12)
    assert_same_features(features_of(tmp_path / "b"), features_of(tmp_path / "a"))
    pids = pd.read_parquet(tmp_path / "b" / "features").set_index("path").features.map(lambda f: f[3])
    stored_again = pd.read_parquet(store / key_store.key.folder / "run_id=0-stored-again")
    assert all(pids[path] == f[3] for path, f in zip(stored_again.path, stored_again.features, strict=True))


@SLOW_TIER
def test_paths_with_spaces_percent_and_accents(spark: SparkSession, tmp_path: Path) -> None:
    """Listed by pyarrow, stored, looked up and assembled with Spark: the same path spelling throughout."""
    photos = tmp_path / "photos 100% ré"
    for cls, colour in CLASSES.items():
        for i in range(3):
            _photo(photos / f"{cls} é" / f"{i} #1%.jpg", colour)
    store = tmp_path / "store é %20"
    first = with_store(spark, plan_for(tmp_path, photos, "a"), store)
    again = with_store(spark, plan_for(tmp_path, photos, "b"), store)
    assert (again.n_features, again.n_reused) == (first.n_features, 9)
    assert_same_features(features_of(tmp_path / "b"), features_of(tmp_path / "a"))
    assert all(" é/" in p and " #1%.jpg" in p for p in features_of(tmp_path / "b").index)
    (photos / "Red é" / "0 #1%.jpg").unlink()
    third = with_store(spark, plan_for(tmp_path, photos, "c"), store)
    assert (third.n_features, third.n_reused, third.n_inferred) == (8, 8, 0)
    assert_same_features(
        features_of(tmp_path / "c"),
        features_of(tmp_path / "b").drop(
            [p for p in features_of(tmp_path / "b").index if p.endswith("Red é/0 #1%.jpg")]
        ),
    )


@SLOW_TIER
def test_labels_follow_this_runs_input_folder(spark: SparkSession, tmp_path: Path) -> None:
    """The same files under another input root: every stored row is held, but labelled as this input's
    folders say (a store shared by runs on different folders)."""
    root = tmp_path / "data"
    for cls, colour in CLASSES.items():
        _photo(root / "fruits" / cls / "0.jpg", colour)
    store = tmp_path / "store"
    with_store(spark, plan_for(tmp_path, root / "fruits", "a"), store)
    whole = with_store(spark, plan_for(tmp_path, root, "b"), store)
    assert (whole.n_inferred, whole.n_reused) == (0, 3)
    assert set(features_of(tmp_path / "b").label) == {"fruits"}


def test_a_listed_file_is_a_stored_one_to_the_second(spark: SparkSession) -> None:
    listed = spark.createDataFrame(
        [("a", 10, 1_575_469_137_773), ("b", 10, 1_575_469_138_000), ("c", 11, 1_575_469_137_000)],
        "path string, length long, modification_ms long",
    )
    stored = spark.createDataFrame(
        [(p, 10, 1_575_469_137_000) for p in "abcd"], "path string, length long, ms long"
    ).selectExpr("path", "length", "timestamp_millis(ms) AS modification_time")
    held = listed.join(stored, same_file(listed, stored), "left_semi")
    assert [row.path for row in held.collect()] == ["a"]  # listed in ms, stored in seconds: the same file


def test_none_of_a_runs_own_rows_found_fails_the_run() -> None:
    with pytest.raises(JobFailedError, match="matched the input's listing"):
        check_assembled(n_features=5, reused=5, inferred=3)
    check_assembled(n_features=7, reused=5, inferred=3)  # one replaced while read: a warning
    check_assembled(n_features=8, reused=5, inferred=3)


@pytest.mark.slow
def test_a_store_run_where_nothing_decodes_leaves_an_empty_features_folder(
    spark: SparkSession, tmp_path: Path
) -> None:
    photos = tmp_path / "broken"
    (photos / "Red").mkdir(parents=True)
    (photos / "Red" / "a.jpg").write_text("not a jpeg")
    result = with_store(spark, plan_for(tmp_path, photos, "run"), tmp_path / "store")
    assert (result.n_features, result.n_rejected, result.features.count()) == (0, 1, 0)
    assert (tmp_path / "run" / "features").is_dir()
    rejects = spark.read.parquet(str(tmp_path / "run" / "rejects"))
    assert rejects.schema.simpleString() == "struct<path:string,reason:string>"
    assert [Path(r.path).name for r in rejects.collect()] == ["a.jpg"]


@SLOW_TIER
def test_compact_drops_duplicates_and_deleted_files(
    spark: SparkSession, photos: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    with_store(spark, plan_for(tmp_path, photos, "a"), store)
    plan = plan_for(tmp_path, photos, "b")
    key_store = FeaturesStore(spark, Storage(spark), str(store), featurizer_key(plan))
    key_store.append(key_store.rows().drop("run_id"), "duplicate-run")  # every identity twice
    (photos / "Red" / "0_100.jpg").unlink()
    (before,) = store_stats(spark, str(store))
    assert (before.images, before.rows, len(before.runs)) == (12, 24, 2)

    (done,) = compact_store(spark, str(store))
    assert (done.rows_before, done.rows_after, done.runs_removed) == (24, 11, 2)
    (after,) = store_stats(spark, str(store))
    assert (after.images, after.rows, len(after.runs)) == (11, 11, 1)
    again = with_store(spark, plan, store)
    assert (again.n_reused, again.n_inferred, again.n_features) == (11, 0, 11)
    with pytest.raises(JobInputError, match="no featurizer key"):
        compact_store(spark, str(store), key="nope")


def features_layouts(folder: Path) -> set[str]:
    """The Parquet column paths of the features values in the files under folder that hold rows."""
    import pyarrow.parquet as pq

    paths = set()
    for file in folder.rglob("*.parquet"):
        metadata = pq.read_metadata(file)
        if metadata.num_rows:
            paths |= {metadata.schema.column(i).path for i in range(metadata.num_columns)}
    return {p for p in paths if p.startswith("features.")}


def values_by_path(run: Path) -> dict[str, np.ndarray]:
    """features/ as pandas (pyarrow) reads it: path -> the whole features vector."""
    df = pd.read_parquet(run / "features")
    return {p: np.asarray(f, np.float32) for p, f in zip(df.path, df.features, strict=True)}


def assert_spark_reads_the_same(spark: SparkSession, run: Path) -> None:
    rows = spark.read.parquet(str(run / "features")).select("path", "features").collect()
    by_pandas = values_by_path(run)
    assert len(rows) == len(by_pandas)
    for row in rows:
        assert np.array_equal(np.asarray(row.features, np.float32), by_pandas[row.path]), row.path


LEGACY_PARQUET_FORMAT = "spark.sql.parquet.writeLegacyFormat"


@SLOW_TIER
def test_a_store_of_two_level_lists_is_read_copied_rewritten_and_compacted(
    spark: SparkSession, photos: Path, tmp_path: Path
) -> None:
    """A store written by the job of 2026-12-02 to 2026-12-07 (Parquet's two-level lists, Spark's legacy
    format), then grown: its rows are looked up, read into features/ beside new ones, compacted, and pandas
    and Spark read every such features/ as the same values."""
    store = tmp_path / "store"
    with_store(spark, plan_for(tmp_path, photos, "a"), store)
    key_store = FeaturesStore(
        spark, Storage(spark), str(store), featurizer_key(plan_for(tmp_path, photos, "b"))
    )
    runs = [p for p in Path(key_store.dir).iterdir() if p.name.startswith("run_id=")]
    from pyspark.sql.types import ArrayType, FloatType, StructType

    old_schema = StructType(
        [
            *FILE_SCHEMA.fields[:4],
            FILE_SCHEMA["features"].__class__("features", ArrayType(FloatType(), False)),
        ]
    )
    old_rows = spark.createDataFrame(key_store.rows().drop("run_id").rdd, old_schema)
    with sql_conf(spark, LEGACY_PARQUET_FORMAT, "true"):  # what the job wrote then
        old_rows.write.parquet(key_store.run_dir("two-level"))
    for run in runs:
        shutil.rmtree(run)
    assert features_layouts(store) == {"features.array"}
    before = values_by_path(tmp_path / "a")

    _photo(photos / "Blue" / "0_100.jpg", (0, 0, 250))  # inferred and appended as a standard list
    grown = with_store(spark, plan_for(tmp_path, photos, "b"), store)
    assert (grown.n_reused, grown.n_inferred, grown.n_features) == (12, 1, 13)
    # Every store file wanted whole is copied as it is: the old two-level file beside the new standard one.
    assert features_layouts(tmp_path / "b" / "features") == {"features.array", "features.list.element"}
    after = values_by_path(tmp_path / "b")
    (blue,) = [p for p in after if p.endswith("Blue/0_100.jpg")]
    np.testing.assert_allclose(after.pop(blue)[:3], (0, 0, 250), atol=3)
    assert after.keys() == before.keys() and all(np.array_equal(after[p], before[p]) for p in before)
    assert_spark_reads_the_same(spark, tmp_path / "b")

    (photos / "Red" / "0_100.jpg").unlink()  # the two-level file holding it is rewritten, by Spark
    shrunk = with_store(spark, plan_for(tmp_path, photos, "c"), store)
    assert (shrunk.n_reused, shrunk.n_inferred, shrunk.n_features) == (12, 0, 12)
    # The file that lost a row is rewritten (standard lists); the others are copied as they are.
    assert "features.list.element" in features_layouts(tmp_path / "c" / "features")
    assert features_layouts(tmp_path / "c" / "features") <= {"features.array", "features.list.element"}
    kept, grown_values = values_by_path(tmp_path / "c"), values_by_path(tmp_path / "b")
    assert kept.keys() == {p for p in grown_values if not p.endswith("Red/0_100.jpg")}
    assert all(np.array_equal(v, grown_values[p]) for p, v in kept.items())
    assert_spark_reads_the_same(spark, tmp_path / "c")

    (done,) = compact_store(spark, str(store))
    assert (done.rows_before, done.rows_after) == (13, 12)
    assert features_layouts(store) == {"features.list.element"}
    again = with_store(spark, plan_for(tmp_path, photos, "d"), store)
    assert (again.n_reused, again.n_inferred) == (12, 0)
    assert values_by_path(tmp_path / "d").keys() == kept.keys()
    assert all(np.array_equal(v, kept[p]) for p, v in values_by_path(tmp_path / "d").items())


def test_store_may_not_sit_in_the_output_or_the_input(tmp_path: Path) -> None:
    with pytest.raises(JobInputError, match="inside --output"):
        check_store_location(
            str(tmp_path / "out" / "store"), input_uri=str(tmp_path / "in"), output=str(tmp_path / "out")
        )
    with pytest.raises(JobInputError, match="inside --input"):
        check_store_location(
            str(tmp_path / "in"), input_uri=str(tmp_path / "in"), output=str(tmp_path / "out")
        )
    assert check_store_location("s3://b/features/", input_uri="s3://b/data", output="s3://b/runs/x") == (
        "s3://b/features"
    )


@SLOW_TIER
def test_new_paths_are_read_literally(spark: SparkSession, tmp_path: Path) -> None:
    """A file named with [ ] { } * ? (a glob to Hadoop) is read as itself."""
    root = tmp_path / "in"
    _photo(root / "Red" / "a[1].jpg", (250, 0, 0))
    _photo(root / "Red" / "a1.jpg", (240, 0, 0))
    _photo(root / "Red" / "b{x,y}*?.jpg", (230, 0, 0))
    store = tmp_path / "store"
    shutil.copy(root / "Red" / "a1.jpg", tmp_path / "a1.jpg")
    (root / "Red" / "a1.jpg").unlink()
    with_store(spark, plan_for(tmp_path, root, "one"), store)
    shutil.copy(tmp_path / "a1.jpg", root / "Red" / "a1.jpg")  # a new image beside the odd names
    second = with_store(spark, plan_for(tmp_path, root, "two"), store)
    assert (second.n_inferred, second.n_reused, second.n_features) == (1, 2, 3)


@pytest.fixture(autouse=True)
def _no_leftover_jobs(spark: SparkSession) -> Iterator[None]:
    yield
    assert active_jobs(spark) == []


@SLOW_TIER
def test_store_commands_through_the_cli(spark: SparkSession, photos: Path, tmp_path: Path, capsys) -> None:
    from tests.job_support import run_cli

    store = tmp_path / "store"
    with_store(spark, plan_for(tmp_path, photos, "a"), store)
    capsys.readouterr()
    assert run_cli(spark, "store", "stats", store) == 0
    out = capsys.readouterr().out
    assert f"features store {store}: 1 featurizer key(s)" in out and "12 images, 0 duplicate rows" in out
    assert run_cli(spark, "store", "compact", store) == 0
    assert "12 rows -> 12 (1 run folders rewritten as one)" in capsys.readouterr().out
    assert run_cli(spark, "store", "stats", tmp_path / "missing") == 2
    assert "features store not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        run_cli(spark, "store", "shrink", store)
    assert usage.value.code == 2


def test_the_label_is_the_first_folder_under_the_input(spark: SparkSession) -> None:
    """with_label: the first folder under the input, however deep the photo, null directly in it."""
    from spark_job.driver.listing import with_label

    root = "file:/data/Training"
    paths = [f"{root}/Kiwi/a.jpg", f"{root}/Kiwi/deeper/b.jpg", f"{root}/flat.jpg", f"{root}/Café %20/é#.png"]
    for qualified in (root, root + "/"):
        rows = with_label(spark.createDataFrame([(p,) for p in paths], "path string"), qualified).collect()
        assert [row["label"] for row in rows] == ["Kiwi", "Kiwi", None, "Café %20"]
