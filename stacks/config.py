"""The deployment's configuration: one frozen dataclass built from CDK context and validated at synth.

Every key has its default in cdk.json ("context") and in DEFAULTS below (a test keeps the two equal).
Values given on the command line (`-c coreCapacity=3`) arrive as strings and are parsed here; a bad value
fails synth with a ConfigError naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from spark_job.contract.names import ALLOWED_IMAGE_SIZES, DEFAULT_VARIANCE, FEATURE_DIM
from stacks import instance_types as types_table
from stacks.release_lines import ALLOWED_RELEASES, ReleaseLine, UnknownReleaseError, release_line
from stacks.runtime_deps import PLATFORMS, PROJECT_ROOT
from stacks.spark_settings import ExecutorSizing, SizingError, size_executors

DEFAULTS: dict[str, Any] = {
    "region": "eu-west-3",
    "releaseLabel": "emr-7.14.0",  # or emr-spark-8.1.0, the LTS line (stacks/release_lines.py)
    "architecture": "x86_64",  # or arm64 (Graviton: m7g, m6g)
    "instanceTypes": None,  # null: the general preset of the architecture (stacks/instance_types.py)
    "coreCapacity": 2,  # executor slots (one per smallest core/task type: 2 = 2 x xlarge nodes)
    "taskCapacity": 0,  # 0: no task fleet
    "taskMarket": "spot",  # the task fleet's market: spot (falls back to on-demand) or on-demand
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
    "egress": "none",  # none: no route to the internet (S3 gateway + KMS endpoints); nat: a NAT gateway
    "weightsFile": None,  # null: weights=imagenet is downloaded once into build/weights/ at synth
    "wheelhouseDir": None,  # null: build/wheelhouse/<arch>/ (make wheelhouse)
    "schedule": None,  # null: no schedule; else an EventBridge Scheduler expression that starts runs
}
EGRESS_MODES = ("none", "nat")
TASK_MARKETS = ("spot", "on-demand")
FLEET_ROLES = ("primary", "core", "task")
# Keys this app once read: refused with what replaces them (a silently ignored key costs money).
REPLACED_KEYS = {
    "coreCount": "coreCapacity (executor slots; with the default xlarge types, one per node)",
    "primaryInstanceType": 'instanceTypes (e.g. -c \'instanceTypes={"primary": ["m5.xlarge", ...]}\')',
    "coreInstanceType": 'instanceTypes (e.g. -c \'instanceTypes={"core": ["m5.2xlarge", ...]}\')',
}
# Context keys that belong to CDK itself (feature flags, CLI settings, context-provider caches).
_CDK_KEY_PREFIXES = ("@aws-cdk", "aws:cdk:", "cdk-")

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NULLS = {"", "null", "none"}


class UnknownContextKeyError(ValueError):
    """A context key the app does not read (a typo would otherwise be silently ignored)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check_context_keys(keys: Iterable[str]) -> None:
    """Refuse a context key the app does not know, naming the nearest known one (or what replaced it).

    CDK's own keys are left alone: feature flags and settings (`@aws-cdk...`, `aws:cdk:...`, `cdk-...`) and
    the context providers' cached lookups in cdk.context.json (`<provider>:account=...:region=...`).
    """
    for key in keys:
        if key in DEFAULTS or key.startswith(_CDK_KEY_PREFIXES) or ":" in key:
            continue
        if key in REPLACED_KEYS:
            raise UnknownContextKeyError(
                key,
                f"Context key {key!r} is no longer read: use {REPLACED_KEYS[key]} (README: Configuration)",
            )
        nearest = difflib.get_close_matches(key, list(DEFAULTS), n=1, cutoff=0.0)
        hint = f"; did you mean {nearest[0]!r}?" if nearest else ""
        raise UnknownContextKeyError(
            key, f"Unknown context key {key!r}{hint} Known keys: {', '.join(DEFAULTS)}"
        )


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
    architecture: str  # x86_64 or arm64, as the context key says (cluster_arch: the lock's name)
    primary_types: tuple[str, ...]
    core_types: tuple[str, ...]
    task_types: tuple[str, ...]
    core_capacity: int  # executor slots (weighted capacity units)
    task_capacity: int  # 0: no task fleet
    task_market: str  # one of TASK_MARKETS
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
    egress: str  # one of EGRESS_MODES
    weights_file: Path | None  # a local weights file to ship for weights=imagenet (None: download once)
    wheelhouse_dir: Path | None  # None: build/wheelhouse/<arch>
    schedule: str | None = None  # None: runs start with `make run` only (and the deploy's run)

    @classmethod
    def from_context(
        cls, get: Callable[[str], Any], *, base_dir: Path | None = None, project_root: Path = PROJECT_ROOT
    ) -> AppConfig:
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
        architecture = _architecture(raw, project_root)
        fleets = _instance_types(raw, types_table.ARCHITECTURES[architecture])
        return cls(
            region=_match(raw, "region", _REGION, "an AWS region name such as eu-west-3"),
            release_label=_release_label(raw),
            architecture=architecture,
            primary_types=fleets["primary"],
            core_types=fleets["core"],
            task_types=fleets["task"],
            core_capacity=_int(raw, "coreCapacity", 1, 50),
            task_capacity=_int(raw, "taskCapacity", 0, 200),
            task_market=_task_market(raw),
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
            egress=_egress(raw),
            weights_file=_weights_file(raw, base_dir),
            wheelhouse_dir=_optional(raw, "wheelhouseDir", lambda k, v: _parse_local_dir(k, v, base_dir)),
            schedule=_optional(raw, "schedule", _parse_schedule),
        )

    @property
    def release_line(self) -> ReleaseLine:
        """What the cluster does differently on the label's line (Spark 3.5 on 7.x, 4.1 on emr-spark-8.x)."""
        return release_line(self.release_label)

    @property
    def cluster_arch(self) -> str:
        """x86_64 or aarch64 (Graviton): which lock and wheelhouse the nodes install."""
        return types_table.ARCHITECTURES[self.architecture]

    @property
    def worker_types(self) -> tuple[str, ...]:
        """The types executors run on: core, and task when there is a task fleet."""
        return self.core_types + (self.task_types if self.task_capacity else ())

    @property
    def executor_sizing(self) -> ExecutorSizing:
        return size_executors([types_table.INSTANCE_TYPES[name] for name in self.worker_types])

    def job_fingerprint(self) -> dict[str, Any]:
        """The settings that change what a run computes or the cluster it runs on (part of the run id).

        idleTimeoutSeconds is in: the cluster of a finished run is TERMINATED, so its AutoTerminationPolicy
        cannot be updated in place; a new value means a new cluster (and run), like any other cluster setting.
        Left out: retainData, noncurrentVersionDays and uploadDir (the data stack only) and runId (it replaces
        the derived id); weightsFile and wheelhouseDir are local paths: the run id takes the weights'
        sha256 and the lock's hash instead; schedule says when runs start, not what they compute.
        """
        fields = asdict(self)
        data_stack_only = ("retain_data", "noncurrent_version_days", "upload_dir")
        for key in (*data_stack_only, "run_id", "weights_file", "wheelhouse_dir", "schedule"):
            fields.pop(key)
        return fields


def config_from_mapping(
    context: Mapping[str, Any], *, base_dir: Path | None = None, project_root: Path = PROJECT_ROOT
) -> AppConfig:
    """Convenience for tests and tools: build from a plain dict of context values."""
    return AppConfig.from_context(context.get, base_dir=base_dir, project_root=project_root)


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
    value = raw("releaseLabel")
    label = _text(value)
    try:
        release_line(label)
    except UnknownReleaseError:
        raise ConfigError("releaseLabel", value, ALLOWED_RELEASES) from None
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


# EventBridge Scheduler's three forms (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html),
# evaluated in UTC. Each invocation starts a whole cluster (~15 min, ~$0.20 with the defaults): at most one
# run an hour, so a rate in minutes is 60 or more and a cron expression names one minute of the hour.
SCHEDULE_ALLOWED = (
    "null (no schedule), or an EventBridge Scheduler expression in UTC starting at most one run an hour: "
    "rate(N hour|hours|day|days) or rate(N minutes) with N >= 60; cron(minute hour day-of-month month "
    "day-of-week year) with one minute 0-59 and ? in day-of-month or day-of-week; or at(yyyy-mm-ddThh:mm:ss) "
    "for one run. E.g. rate(1 day), cron(0 3 * * ? *)"
)
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(([^()]+)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON_FIELDS = (  # the characters each field may hold (values and wildcards), in order
    re.compile(r"^[0-9]{1,2}$"),  # minutes: one value (at most one run an hour)
    re.compile(r"^[0-9,*/-]+$"),  # hours
    re.compile(r"^([0-9,*/?LW-]+)$"),  # day-of-month
    re.compile(r"^([0-9A-Za-z,*/-]+)$"),  # month (1-12 or JAN-DEC)
    re.compile(r"^([0-9A-Za-z,*?L#-]+)$"),  # day-of-week (1-7 or SUN-SAT)
    re.compile(r"^[0-9,*/-]+$"),  # year
)


def _parse_schedule(key: str, value: Any) -> str:
    text = " ".join(_text(value).split())
    if rate := _RATE.match(text):
        number, unit = int(rate.group(1)), rate.group(2)
        # Scheduler wants the singular unit for 1 and the plural otherwise, as EventBridge rules do.
        if number >= 1 and (number == 1) == (not unit.endswith("s")) and (number >= 60 or unit[:3] != "min"):
            return text
    elif cron := _CRON.match(text):
        fields = cron.group(1).split(" ")
        if (
            len(fields) == len(_CRON_FIELDS)
            and all(pattern.match(field) for pattern, field in zip(_CRON_FIELDS, fields, strict=True))
            and int(fields[0]) <= 59
            and (fields[2] == "?") != (fields[4] == "?")  # one of day-of-month, day-of-week is ?
        ):
            return text
    elif at := _AT.match(text):
        try:
            datetime.strptime(at.group(1), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            pass
        else:
            return text
    raise ConfigError(key, value, SCHEDULE_ALLOWED)


def _egress(raw: Callable[[str], Any]) -> str:
    value = raw("egress")
    text = _text(value).lower()
    if text not in EGRESS_MODES:
        raise ConfigError(
            "egress", value, "none (no internet route: S3 and KMS endpoints only) or nat (a NAT gateway)"
        )
    return text


def _weights_file(raw: Callable[[str], Any], base_dir: Path | None) -> Path | None:
    path = _optional(raw, "weightsFile", lambda k, v: _parse_local_path(k, v, base_dir))
    if path is not None and raw("weights") != "imagenet":
        raise ConfigError(
            "weightsFile", raw("weightsFile"), f"null while weights={raw('weights')!r} (it ships imagenet)"
        )
    return path


def _parse_local_path(key: str, value: Any, base_dir: Path | None) -> Path:
    path = Path(_text(value)).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise ConfigError(key, value, "null or an existing local weights file (.h5)")
    return path.resolve()


def _parse_local_dir(key: str, value: Any, base_dir: Path | None) -> Path:
    path = Path(_text(value)).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_dir():
        raise ConfigError(key, value, "null or an existing wheelhouse directory (make wheelhouse)")
    return path.resolve()


def _architecture(raw: Callable[[str], Any], project_root: Path) -> str:
    value = raw("architecture")
    text = _text(value)
    if text not in types_table.ARCHITECTURES:
        raise ConfigError("architecture", value, "x86_64 or arm64 (Graviton)")
    platform = PLATFORMS[types_table.ARCHITECTURES[text]]
    if not platform.lock_path(project_root).is_file():
        raise ConfigError(
            "architecture",
            value,
            f"an architecture with a lock: {platform.lock_name} is missing (make lock writes it)",
        )
    return text


def _task_market(raw: Callable[[str], Any]) -> str:
    value = raw("taskMarket")
    text = _text(value).lower()
    if text not in TASK_MARKETS:
        raise ConfigError(
            "taskMarket", value, "spot (falls back to on-demand while provisioning) or on-demand"
        )
    return text


def _instance_types(raw: Callable[[str], Any], arch: str) -> dict[str, tuple[str, ...]]:
    """Each fleet's types: the preset of `arch`, with the roles given in instanceTypes replaced.

    instanceTypes is null, a preset name (general-xlarge ... general-8xlarge), or a JSON object
    {"primary": [...], "core": [...], "task": [...]} (any subset of the roles; the rest take the preset).
    """
    value = raw("instanceTypes")
    presets = [f"general-{size}" for size in types_table.SIZES]
    allowed = (
        f"null, a preset ({', '.join(presets)}) or a JSON object with lists of 3 to 5 types for any of "
        f"{', '.join(FLEET_ROLES)}, from {', '.join(sorted(types_table.INSTANCE_TYPES))}"
    )
    chosen: dict[str, Any] = {}
    size = "xlarge"
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS):
        pass
    elif isinstance(value, str) and value.strip() in presets:
        size = value.strip().split("-", 1)[1]
    else:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError("instanceTypes", raw("instanceTypes"), allowed) from None
        if not isinstance(value, dict) or not set(value) <= set(FLEET_ROLES):
            raise ConfigError("instanceTypes", raw("instanceTypes"), allowed)
        chosen = value
    preset = types_table.preset_types(arch, size)
    fleets: dict[str, tuple[str, ...]] = {}
    for role in FLEET_ROLES:
        names = chosen.get(role, preset)
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ConfigError("instanceTypes", raw("instanceTypes"), allowed)
        names = tuple(n.strip() for n in names)
        key = f"instanceTypes.{role}"
        if not types_table.MIN_FLEET_TYPES <= len(names) <= types_table.MAX_FLEET_TYPES or len(
            set(names)
        ) < len(names):
            raise ConfigError(
                key,
                list(names),
                f"{types_table.MIN_FLEET_TYPES} to {types_table.MAX_FLEET_TYPES} distinct interchangeable "
                "types (one type alone fails the deploy when its capacity runs out)",
            )
        for name in names:
            known = types_table.lookup(name)
            if known is None:
                raise ConfigError(key, name, f"one of {', '.join(sorted(types_table.INSTANCE_TYPES))}")
            if known.arch != arch:
                raise ConfigError(
                    key,
                    name,
                    f"a type of the chosen architecture ({arch}): every node installs one wheelhouse, and "
                    "fit and transform must run on the same architecture",
                )
        fleets[role] = names
    workers = [types_table.INSTANCE_TYPES[n] for n in fleets["core"] + fleets["task"]]
    try:
        size_executors(workers)
    except SizingError as error:
        raise ConfigError(
            "instanceTypes", raw("instanceTypes"), f"worker types Spark can size: {error}"
        ) from None
    return fleets
