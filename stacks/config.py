"""The deployment's configuration: one frozen dataclass built from CDK context and validated at synth.

Every key has its default in cdk.json ("context") and in DEFAULTS below (a test keeps the two equal).
Values given on the command line (`-c coreCount=3`) arrive as strings and are parsed here; a bad value
fails synth with a ConfigError naming the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spark_job.names import ALLOWED_IMAGE_SIZES, DEFAULT_VARIANCE, FEATURE_DIM

MIN_RELEASE_MINOR = 1  # python3.11 ships with EMR 7.1.0 and later

DEFAULTS: dict[str, Any] = {
    "region": "eu-west-3",
    "releaseLabel": "emr-7.14.0",
    "primaryInstanceType": "m5.xlarge",
    "coreInstanceType": "m5.xlarge",
    "coreCount": 2,
    "rootVolumeSizeGiB": 40,
    "idleTimeoutSeconds": 900,
    "varianceTarget": None,  # null: DEFAULT_VARIANCE unless components is set
    "components": None,
    "imageSize": 224,
    "weights": "imagenet",
    "inputUri": None,
    "retainData": True,
    "noncurrentVersionDays": 30,
    "uploadDir": None,
    "runId": None,
}

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_RELEASE = re.compile(r"^emr-7\.(\d+)\.(\d+)$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NULLS = {"", "null", "none"}


class ConfigError(ValueError):
    """A context value that cannot be used; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"Invalid context value {key}={value!r}: expected {allowed}")
        self.key = key
        self.value = value


@dataclass(frozen=True)
class AppConfig:
    region: str
    release_label: str
    primary_instance_type: str
    core_instance_type: str
    core_count: int
    root_volume_size_gib: int
    idle_timeout_seconds: int
    variance_target: float | None
    components: int | None
    image_size: int
    weights: str
    input_uri: str | None  # None: s3://<data bucket>/data
    retain_data: bool
    noncurrent_version_days: int  # the data bucket keeps overwritten/deleted objects' versions this long
    upload_dir: Path | None
    run_id: str | None  # None: derived from the code assets and the job config

    @classmethod
    def from_context(cls, get: Callable[[str], Any], *, base_dir: Path | None = None) -> AppConfig:
        """Build from a context getter (e.g. `app.node.try_get_context`); missing keys take DEFAULTS.

        base_dir: relative `uploadDir` paths are resolved against it (default: the working directory,
        which is where `cdk` runs app.py).
        """

        def raw(key: str) -> Any:
            value = get(key)
            return DEFAULTS[key] if value is None else value

        variance = _optional(raw, "varianceTarget", _parse_variance)
        components = _optional(raw, "components", _parse_components)
        if variance is not None and components is not None:
            raise ConfigError(
                "components",
                raw("components"),
                f"null while varianceTarget is set (varianceTarget={variance!r}): the two are mutually "
                "exclusive, set only one of them",
            )
        if variance is None and components is None:
            variance = DEFAULT_VARIANCE
        return cls(
            region=_match(raw, "region", _REGION, "an AWS region name such as eu-west-3"),
            release_label=_release_label(raw),
            primary_instance_type=_match(
                raw, "primaryInstanceType", _INSTANCE_TYPE, "an EC2 instance type such as m5.xlarge"
            ),
            core_instance_type=_match(
                raw, "coreInstanceType", _INSTANCE_TYPE, "an EC2 instance type such as m5.xlarge"
            ),
            core_count=_int(raw, "coreCount", 1, 50),
            root_volume_size_gib=_int(raw, "rootVolumeSizeGiB", 30, 1024),
            idle_timeout_seconds=_int(raw, "idleTimeoutSeconds", 60, 604800),
            variance_target=variance,
            components=components,
            image_size=_image_size(raw),
            weights=_weights(raw),
            input_uri=_optional(raw, "inputUri", _parse_input_uri),
            retain_data=_bool(raw, "retainData"),
            noncurrent_version_days=_int(raw, "noncurrentVersionDays", 1, 3650),
            upload_dir=_optional(raw, "uploadDir", lambda k, v: _parse_upload_dir(k, v, base_dir)),
            run_id=_optional(raw, "runId", _parse_run_id),
        )

    def job_fingerprint(self) -> dict[str, Any]:
        """The settings that change what a run computes or the cluster it runs on (part of the run id).

        idleTimeoutSeconds is in: the cluster of a finished run is TERMINATED, so its AutoTerminationPolicy
        cannot be updated in place; a new value means a new cluster (and run), like any other cluster setting.
        Left out: retainData, noncurrentVersionDays and uploadDir (the data stack only) and runId (it
        replaces the derived id).
        """
        fields = asdict(self)
        for key in ("retain_data", "noncurrent_version_days", "upload_dir", "run_id"):
            fields.pop(key)
        return fields


def config_from_mapping(context: Mapping[str, Any], *, base_dir: Path | None = None) -> AppConfig:
    """Convenience for tests and tools: build from a plain dict of context values."""
    return AppConfig.from_context(context.get, base_dir=base_dir)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else str(value)


def _optional(raw: Callable[[str], Any], key: str, parse: Callable[[str, Any], Any]) -> Any:
    value = raw(key)
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS):
        return None
    return parse(key, value)


def _match(raw: Callable[[str], Any], key: str, pattern: re.Pattern[str], allowed: str) -> str:
    value = raw(key)
    if not isinstance(value, str) or not pattern.match(value.strip()):
        raise ConfigError(key, value, allowed)
    return value.strip()


def _int(raw: Callable[[str], Any], key: str, low: int, high: int) -> int:
    value = raw(key)
    allowed = f"an integer from {low} to {high}"
    if isinstance(value, bool):
        raise ConfigError(key, value, allowed)
    try:
        number = int(_text(value)) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(key, value, allowed) from None
    if not low <= number <= high:
        raise ConfigError(key, value, allowed)
    return number


def _bool(raw: Callable[[str], Any], key: str) -> bool:
    value = raw(key)
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ConfigError(key, value, "true or false")


def _release_label(raw: Callable[[str], Any]) -> str:
    allowed = f"an EMR 7.x release label from emr-7.{MIN_RELEASE_MINOR}.0 on (python3.11), e.g. emr-7.14.0"
    label = _match(raw, "releaseLabel", _RELEASE, allowed)
    match = _RELEASE.match(label)
    assert match is not None
    if int(match.group(1)) < MIN_RELEASE_MINOR:
        raise ConfigError("releaseLabel", label, allowed)
    return label


def _parse_variance(key: str, value: Any) -> float:
    allowed = "a number in (0, 1], or null when components is set"
    if isinstance(value, bool):
        raise ConfigError(key, value, allowed)
    try:
        number = float(_text(value))
    except ValueError:
        raise ConfigError(key, value, allowed) from None
    if not 0.0 < number <= 1.0:
        raise ConfigError(key, value, allowed)
    return number


def _parse_components(key: str, value: Any) -> int:
    allowed = f"null or an integer from 1 to {FEATURE_DIM}"
    if isinstance(value, bool | float):
        raise ConfigError(key, value, allowed)
    try:
        number = int(_text(value))
    except ValueError:
        raise ConfigError(key, value, allowed) from None
    if not 1 <= number <= FEATURE_DIM:
        raise ConfigError(key, value, allowed)
    return number


def _image_size(raw: Callable[[str], Any]) -> int:
    value = raw("imageSize")
    allowed = "one of " + ", ".join(str(s) for s in ALLOWED_IMAGE_SIZES)
    if isinstance(value, bool):
        raise ConfigError("imageSize", value, allowed)
    try:
        number = int(_text(value))
    except ValueError:
        raise ConfigError("imageSize", value, allowed) from None
    if number not in ALLOWED_IMAGE_SIZES:
        raise ConfigError("imageSize", value, allowed)
    return number


def _weights(raw: Callable[[str], Any]) -> str:
    value = raw("weights")
    text = _text(value)
    if text == "imagenet":
        return text
    match = _S3_URI.match(text)
    if match and match.group(2) and len(match.group(2)) > 1 and not text.endswith("/"):
        return text
    raise ConfigError("weights", value, "imagenet or the s3://bucket/key URI of a weights file")


def _parse_input_uri(key: str, value: Any) -> str:
    text = _text(value).rstrip("/")
    if not _S3_URI.match(text):
        raise ConfigError(key, value, "null (the data bucket's data/ prefix) or an s3://bucket[/prefix] URI")
    return text


def _parse_upload_dir(key: str, value: Any, base_dir: Path | None) -> Path:
    path = Path(_text(value)).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_dir():
        raise ConfigError(key, value, "null or an existing local directory to upload into data/")
    return path.resolve()


def _parse_run_id(key: str, value: Any) -> str:
    text = _text(value)
    if not _RUN_ID.match(text):
        raise ConfigError(
            key, value, "null (derived from code and config) or 1-63 characters of A-Z a-z 0-9 . _ -"
        )
    return text
