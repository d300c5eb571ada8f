"""Arrow columns made from buffers, without `pa.array`: pyarrow imports pandas on its first `pa.array`
call (0.2 s in a quiet Python worker, 0.8 s on a loaded one), and a worker that lists, infers or folds
moments never needs pandas otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def int64s(values: Sequence[int] | np.ndarray) -> pa.Array:
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def bools(values: Sequence[bool]) -> pa.Array:
    bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def _variable(kind: pa.DataType, items: Sequence[bytes]) -> pa.Array:
    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    np.cumsum([len(item) for item in items], out=offsets[1:])
    return pa.Array.from_buffers(
        kind, len(items), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(items))]
    )


def strings(values: Sequence[str]) -> pa.Array:
    return _variable(pa.string(), [value.encode("utf-8") for value in values])


def binaries(values: Sequence[bytes]) -> pa.Array:
    return _variable(pa.binary(), list(values))
