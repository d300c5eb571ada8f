"""Typed JSON documents: frozen dataclasses read back with every key and type checked.

`_Record` gives a top-level record `to_json`/`from_json` with a `schema_version`: bad JSON, a missing key, a
value of the wrong type or a version this code does not know is a RecordError, which is a JobInputError
(the CLI's exit status 2), never a KeyError deep inside a run. Records written before versioning (no
`schema_version`: version 1) load. Standard library only: `ops`, `stacks` and the app import it.
"""

from __future__ import annotations

import json
import types
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from spark_job.contract.errors import JobInputError


class RecordError(JobInputError):
    """A record that cannot be read as written: bad JSON, missing key, wrong type, unknown version."""


def _parse(tp: Any, value: Any, where: str) -> Any:
    """`value` (decoded JSON) checked against the type hint `tp`; nested records are built."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _parse(inner, value, where)
    if origin is Literal:
        if value not in get_args(tp):
            raise RecordError(f"{where} must be one of {', '.join(map(repr, get_args(tp)))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where} must be a list, got {type(value).__name__}")
        (item,) = get_args(tp)
        return [_parse(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where} must be an object, got {type(value).__name__}")
        _, item = get_args(tp)
        return {str(k): _parse(item, v, f"{where}.{k}") for k, v in value.items()}
    if is_dataclass(tp):
        return _from_dict(tp, value, where)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return value
    name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
    raise RecordError(f"{where} must be {name}, got {type(value).__name__} {value!r:.60}")


def _from_dict(cls: Any, doc: Any, where: str) -> Any:
    if not isinstance(doc, dict):
        raise RecordError(f"{where} must be an object, got {type(doc).__name__}")
    hints = get_type_hints(cls)
    values = {}
    for f in fields(cls):
        key = f"{where}.{f.name}"
        if f.name in doc:
            values[f.name] = _parse(hints[f.name], doc[f.name], key)
        elif f.default is MISSING and f.default_factory is MISSING:  # a required key
            raise RecordError(f"{where} has no key {f.name!r}")
    return cls(**values)


class _Record:
    """to_json/from_json with a schema version, for the top-level records."""

    SCHEMA_VERSION: ClassVar[int]
    FILE_NAME: ClassVar[str]

    @classmethod
    def _upgrade(cls, doc: dict[str, Any], version: int) -> dict[str, Any]:
        """The document of an older version in the current layout (no change by default)."""
        return doc

    def _check(self, source: str) -> None:
        """Value checks beyond types (none by default)."""

    def _document(self) -> dict[str, Any]:
        return {"schema_version": self.SCHEMA_VERSION, **asdict(self)}  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self._document(), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, source: str | None = None) -> Any:
        """Parse and check a record; `source` (its path or URI) starts every error message."""
        source = source or cls.FILE_NAME
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RecordError(f"{source} must hold a JSON object, got {type(doc).__name__}")
        version = doc.pop("schema_version", 1)  # records written before versioning
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RecordError(f"{source}: schema_version must be an integer >= 1, got {version!r}")
        if version > cls.SCHEMA_VERSION:
            raise RecordError(
                f"{source} has schema_version {version}; this job reads {cls.FILE_NAME} up to version "
                f"{cls.SCHEMA_VERSION} (written by a newer job?)"
            )
        record = _from_dict(cls, cls._upgrade(doc, version), source)
        record._check(source)
        return record

    @classmethod
    def read(cls, path: Path) -> Any:
        """A record from a local file."""
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise RecordError(f"cannot read {path}: {exc.strerror or exc}") from None
        return cls.from_json(text, str(path))
