"""How tables with a features column are written as Parquet: features/ and the features store's files.

Spark's standard format writes an array as a three-level list, a group and a field around each of the
1,280 values. With its legacy format on, an array whose elements are non-null (the featurize function
declares its values so) is a two-level list, one value after another: the featurize stage's JVM task CPU
halves (2.3 -> 1.23 s per 8,000 images, 2026-12-02, local[2]). The dictionary is off for the values:
photos' features are distinct floats, so it only fills up and falls back. Rows read back from Parquet
(store rewrites, compaction) come with nullable elements, and Spark writes them as its legacy
three-level list. Spark, pyarrow and the Parquet spec's compatibility rules read every layout as the same
column. The legacy format also changes decimals and maps; these tables have neither.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

LEGACY_PARQUET_FORMAT = "spark.sql.parquet.writeLegacyFormat"
# The values' column path in the two-level list and in Spark's legacy three-level one.
FEATURES_PARQUET_OPTIONS = {
    "parquet.enable.dictionary#features.array": "false",
    "parquet.enable.dictionary#features.bag.array": "false",
}


def save_features(rows: DataFrame, path: str, mode: str, options: dict[str, str] | None = None) -> None:
    """rows.write.parquet(path) for a table with a features column."""
    with _legacy_parquet_format(rows.sparkSession):
        rows.write.options(**FEATURES_PARQUET_OPTIONS, **(options or {})).mode(mode).parquet(path)


# The format is a session setting, read when a write is planned: Spark 3.5 takes no write option for it.
# Writes in one session at once (two store runs from two threads) share it: the first one in turns it on,
# the last one out puts back what was there (a plain set-and-restore per write would turn it off under
# another, or leave it on for good). Any other Parquet write planned meanwhile in that session is written
# in the legacy format too, and reads the same.
_legacy_lock = threading.Lock()
_legacy_writers: dict[int, tuple[int, str | None]] = {}  # id(session) -> (writers, the setting before)


@contextmanager
def _legacy_parquet_format(spark: SparkSession) -> Iterator[None]:
    key = id(spark)
    with _legacy_lock:
        writers, before = _legacy_writers.get(key, (0, None))
        if writers == 0:
            before = spark.conf.get(LEGACY_PARQUET_FORMAT, None)
            spark.conf.set(LEGACY_PARQUET_FORMAT, "true")
        _legacy_writers[key] = (writers + 1, before)
    try:
        yield
    finally:
        with _legacy_lock:
            writers, before = _legacy_writers.pop(key)
            if writers > 1:
                _legacy_writers[key] = (writers - 1, before)
            elif before is None:
                spark.conf.unset(LEGACY_PARQUET_FORMAT)
            else:
                spark.conf.set(LEGACY_PARQUET_FORMAT, before)
