"""The features' linear algebra in the Python workers, with NumPy's BLAS: the moments PCA is fitted from,
and the projection onto the fitted components. Spark's own versions use plain-Java BLAS one row at a time
on Spark 3.5; here a block of rows is one BLAS call (docs/decisions.md has the measurements).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from spark_job.contract.names import FEATURE_DIM
from spark_job.workers.arrow_columns import binaries, int64s

# Rows per BLAS call: one call's product is 1280 x 1280 doubles whatever the block; a block of 1024 rows is
# 10 MB of float64, so a task's memory stays ~40 MB however many rows its partition holds.
BLOCK_ROWS = 1024
MOMENTS_DDL = "n long, mean binary, m2 binary"


@dataclass(frozen=True)
class Moments:
    """n rows' count, mean and centred sum of outer products (M2 = sum (x - mean)(x - mean)^T), float64."""

    n: int
    mean: np.ndarray  # (d,)
    m2: np.ndarray  # (d, d)

    @classmethod
    def of(cls, block: np.ndarray) -> Moments:
        x = np.asarray(block, dtype=np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        return cls(len(x), mean, centred.T @ centred)

    def merge(self, other: Moments) -> Moments:
        """Chan et al.'s pairwise update: exact in exact arithmetic, and no large sums cancel in floats."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.n * other.n / n)
        return Moments(n, mean, m2)

    def to_row(self) -> tuple[int, bytes, bytes]:
        return self.n, self.mean.tobytes(), self.m2.tobytes()

    @classmethod
    def from_row(cls, row: tuple[int, bytes, bytes]) -> Moments:
        n, mean, m2 = row
        d = len(mean) // 8
        return cls(
            int(n), np.frombuffer(mean, np.float64).copy(), np.frombuffer(m2, np.float64).reshape(d, d)
        )


def features_matrix(batch: pa.RecordBatch) -> np.ndarray:
    """A batch's `features` (list<float> of one length, FEATURE_DIM in the job) as an (n, d) float32 view."""
    column = batch.column("features")
    values = column.flatten().to_numpy(zero_copy_only=False)
    n = len(column)
    if column.null_count or (n and len(values) % n) or len(set(column.value_lengths().to_pylist())) > 1:
        raise ValueError("features must be lists of one length, never null")
    return values.reshape(n, len(values) // n if n else FEATURE_DIM)


def _blocks(batches: Iterable[pa.RecordBatch]) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    rows = 0
    for batch in batches:
        pending.append(features_matrix(batch))
        rows += batch.num_rows
        if rows >= BLOCK_ROWS:
            yield np.concatenate(pending)
            pending, rows = [], 0
    if rows:
        yield np.concatenate(pending)


def partition_moments(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The mapInArrow function of the PCA pass: one row (MOMENTS_DDL) per task, its rows' Moments."""
    total: Moments | None = None
    for block in _blocks(batches):
        total = Moments.of(block) if total is None else total.merge(Moments.of(block))
    if total is None:  # an empty partition
        return
    n, mean, m2 = total.to_row()
    yield pa.RecordBatch.from_arrays(
        [int64s([n]), binaries([mean]), binaries([m2])], names=["n", "mean", "m2"]
    )


def projection(
    mean: np.ndarray, scale: np.ndarray, components: np.ndarray
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function of the projection: path, label, features -> path, label, pca (float32, k):
    ((x - mean) * scale) @ components, in float64 as Spark's StandardScalerModel and PCAModel compute it
    (scale is 1 / std, 0 where std is 0)."""
    k = components.shape[1]
    pca_type = pa.list_(pa.field("element", pa.float32(), nullable=False))

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            x = features_matrix(batch).astype(np.float64)
            pca = (((x - mean) * scale) @ components).astype(np.float32).reshape(-1)
            offsets = pa.py_buffer(np.arange(0, (batch.num_rows + 1) * k, k, dtype=np.int32))
            values = pa.Array.from_buffers(pa.float32(), len(pca), [None, pa.py_buffer(pca)])
            column = pa.Array.from_buffers(pca_type, batch.num_rows, [None, offsets], children=[values])
            yield pa.RecordBatch.from_arrays(
                [batch.column("path"), batch.column("label"), column], names=["path", "label", "pca"]
            )

    return run
