"""AppConfig: cdk.json defaults, CLI strings parsed, every bad value failing synth with a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import PROJECT_ROOT
from stacks.config import (
    DEFAULTS,
    AppConfig,
    ConfigError,
    UnknownContextKeyError,
    check_context_keys,
    config_from_mapping,
)
from stacks.runtime_deps import arch_of_instance_type
from tests.infra.conftest import CDK_JSON, cdk_json_context

X86_PRESET = ("m5.xlarge", "m6i.xlarge", "m5a.xlarge", "m6a.xlarge", "m7i.xlarge")
ARM_PRESET = ("m7g.xlarge", "m6g.xlarge", "m7g.2xlarge", "m6g.2xlarge")


def test_cdk_json_holds_every_default_and_runs_the_venv_python():
    document = json.loads(CDK_JSON.read_text())
    assert document["app"] == ".venv/bin/python app.py"
    assert document["notices"] is False  # the CLI never fetches notices over HTTPS (offline synth and tests)
    context = cdk_json_context()
    assert {k: context[k] for k in DEFAULTS} == DEFAULTS
    # the recommended feature flags of `cdk init` are there too
    assert context["@aws-cdk/aws-iam:minimizePolicies"] is True
    assert context["@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"] is True


def test_defaults():
    config = config_from_mapping({})
    assert config == AppConfig(
        region="eu-west-3",
        release_label="emr-7.14.0",
        architecture="x86_64",
        primary_types=X86_PRESET,
        core_types=X86_PRESET,
        task_types=X86_PRESET,
        core_capacity=2,
        task_capacity=0,
        task_market="spot",
        root_volume_size_gib=40,
        idle_timeout_seconds=900,
        variance_target=0.95,
        components=None,
        image_size=224,
        weights="imagenet",
        input_uri=None,
        retain_data=True,
        noncurrent_version_days=30,
        upload_dir=None,
        run_id=None,
        egress="none",
        weights_file=None,
        wheelhouse_dir=None,
        schedule=None,
    )
    assert config.cluster_arch == "x86_64"


def test_command_line_strings_are_parsed(tmp_path: Path):
    (tmp_path / "fruits").mkdir()
    config = config_from_mapping(
        {
            "coreCapacity": "3",
            "taskCapacity": "6",
            "taskMarket": "On-Demand",
            "architecture": "arm64",
            "instanceTypes": '{"core": ["m7g.2xlarge", "m6g.2xlarge", "m7g.4xlarge"]}',
            "rootVolumeSizeGiB": "64",
            "idleTimeoutSeconds": "600",
            "retainData": "false",
            "components": "50",
            "imageSize": "160",
            "inputUri": "s3://other-bucket/fruits-360/",
            "weights": "s3://models-bucket/mobilenet_v2.h5",
            "uploadDir": "fruits",
            "runId": "2026-11-21a",
            "egress": "NAT",
            "wheelhouseDir": "fruits",
        },
        base_dir=tmp_path,
    )
    assert config.egress == "nat"
    assert config.wheelhouse_dir == (tmp_path / "fruits").resolve()
    assert (config.core_capacity, config.task_capacity, config.task_market) == (3, 6, "on-demand")
    assert (config.architecture, config.cluster_arch) == ("arm64", "aarch64")
    assert config.core_types == ("m7g.2xlarge", "m6g.2xlarge", "m7g.4xlarge")
    assert config.primary_types == config.task_types == ARM_PRESET
    assert config.root_volume_size_gib == 64
    assert config.idle_timeout_seconds == 600
    assert config.retain_data is False
    assert (config.components, config.variance_target) == (50, None)
    assert config.image_size == 160
    assert config.input_uri == "s3://other-bucket/fruits-360"
    assert config.weights == "s3://models-bucket/mobilenet_v2.h5"
    assert config.upload_dir == (tmp_path / "fruits").resolve()
    assert config.run_id == "2026-11-21a"


@pytest.mark.parametrize("text", ["null", "None", ""])
def test_null_strings_clear_optional_keys(text: str):
    config = config_from_mapping({"inputUri": text, "runId": text, "components": text, "uploadDir": text})
    assert (config.input_uri, config.run_id, config.components, config.upload_dir) == (None, None, None, None)
    assert config.variance_target == 0.95


@pytest.mark.parametrize("value", ["0.8", 0.8])
def test_variance_target(value):
    assert config_from_mapping({"varianceTarget": value}).variance_target == 0.8


BAD_VALUES = [
    ("region", "paris", "AWS region"),
    ("releaseLabel", "emr-6.15.0", "EMR 7.x release label"),
    ("releaseLabel", "emr-7.0.0", "from emr-7.1.0"),
    # EMR 8: the checked labels only; 8.0.0 (Spark 4.0) was never tested, 8.1 is not spelled emr-8.x.
    *(
        ("releaseLabel", label, "or a checked EMR 8 (LTS) label: emr-spark-8.1.0 (docs/spark-4.md)")
        for label in [
            "emr-spark-8.0.0",
            "emr-spark-8.2.0",
            "emr-8.1.0",
            "emr-spark-8.1",
            "EMR-SPARK-8.1.0",
            "8.1.0",
        ]
    ),
    ("coreCapacity", "zero", "integer from 1 to 50"),
    ("coreCapacity", "0", "integer from 1 to 50"),
    ("coreCapacity", 51, "integer from 1 to 50"),
    ("coreCapacity", True, "integer from 1 to 50"),
    ("taskCapacity", "-1", "integer from 0 to 200"),
    ("taskCapacity", "some", "integer from 0 to 200"),
    ("taskMarket", "reserved", "spot (falls back to on-demand while provisioning) or on-demand"),
    ("architecture", "arm", "x86_64 or arm64 (Graviton)"),
    ("architecture", "aarch64", "x86_64 or arm64 (Graviton)"),
    ("instanceTypes", "huge", "a preset (general-xlarge, general-2xlarge"),
    ("instanceTypes", '{"workers": ["m5.xlarge"]}', "a JSON object with lists of 3 to 5 types"),
    ("instanceTypes", '{"core": "m5.xlarge"}', "a JSON object with lists of 3 to 5 types"),
    ("rootVolumeSizeGiB", 10, "integer from 30 to 1024"),
    ("idleTimeoutSeconds", "30", "integer from 60 to 604800"),
    ("idleTimeoutSeconds", 700000, "integer from 60 to 604800"),
    ("varianceTarget", "1.5", "number in (0, 1]"),
    ("varianceTarget", "most", "number in (0, 1]"),
    ("components", "0", "integer from 1 to 1280"),
    ("components", 2000, "integer from 1 to 1280"),
    ("components", "fifty", "integer from 1 to 1280"),
    ("imageSize", "100", "one of 96, 128, 160, 192, 224"),
    ("imageSize", "big", "one of 96, 128, 160, 192, 224"),
    ("weights", "https://example.com/w.h5", "imagenet or the s3://bucket/key URI"),
    ("weights", "s3://models-bucket/", "imagenet or the s3://bucket/key URI"),
    ("inputUri", "other-bucket/fruits", "s3://bucket[/prefix] URI"),
    ("retainData", "maybe", "true or false"),
    ("noncurrentVersionDays", "0", "integer from 1 to 3650"),
    ("noncurrentVersionDays", "a month", "integer from 1 to 3650"),
    ("noncurrentVersionDays", 4000, "integer from 1 to 3650"),
    ("uploadDir", "no/such/dir", "existing local directory"),
    ("runId", "bad id!", "1-63 characters"),
    ("egress", "internet", "none (no internet route: S3 and KMS endpoints only) or nat (a NAT gateway)"),
    ("egress", "", "none (no internet route"),
    ("weightsFile", "no/such/weights.h5", "null or an existing local weights file"),
    ("wheelhouseDir", "no/such/dir", "null or an existing wheelhouse directory (make wheelhouse)"),
    *(
        ("schedule", value, "rate(N hour|hours|day|days) or rate(N minutes) with N >= 60")
        for value in [
            "daily",
            "rate(1 days)",  # the singular unit for 1, the plural otherwise
            "rate(2 day)",
            "rate(0 hours)",
            "rate(30 minutes)",  # more than one cluster an hour
            "rate(1 week)",
            "cron(0 3 * * * *)",  # * in both day-of-month and day-of-week
            "cron(0 3 1 * MON *)",  # a value in both: one of them must be ?
            "cron(*/15 3 * * ? *)",  # a run every 15 minutes
            "cron(0,30 3 * * ? *)",
            "cron(60 3 * * ? *)",
            "cron(0 3 * * ?)",  # five fields: Scheduler's cron has six (the year last)
            "0 3 * * *",  # a crontab line
            "at(2026-13-01T00:00:00)",
            "at(2026-12-01)",
        ]
    ),
]

GOOD_SCHEDULES = [
    "rate(1 day)",
    "rate(7 days)",
    "rate(1 hour)",
    "rate(60 minutes)",
    "cron(0 3 * * ? *)",
    "cron(30 2 ? * MON-FRI *)",
    "cron(0 6 1 * ? 2027)",
    "at(2026-12-24T18:00:00)",
]


# Every allowed label, with its line: Spark series, services endpoint networking.
GOOD_RELEASES = [
    ("emr-7.1.0", "3.5", False),
    ("emr-7.14.0", "3.5", False),
    ("emr-7.20.1", "3.5", False),
    ("emr-spark-8.1.0", "4.1", True),
]


@pytest.mark.parametrize(("label", "series", "service_endpoint"), GOOD_RELEASES)
def test_release_label_picks_its_line(label: str, series: str, service_endpoint: bool):
    config = config_from_mapping({"releaseLabel": f" {label} "})
    assert config.release_label == label
    line = config.release_line
    assert (line.spark_series, line.service_endpoint) == (series, service_endpoint)
    assert (line.applications, line.python) == (("Spark",), "/usr/bin/python3.11")


def test_the_release_label_is_in_the_run_id():
    lts = config_from_mapping({"releaseLabel": "emr-spark-8.1.0"}).job_fingerprint()
    assert lts["release_label"] == "emr-spark-8.1.0"
    assert lts != config_from_mapping({}).job_fingerprint()


@pytest.mark.parametrize("expression", GOOD_SCHEDULES)
def test_schedule_takes_the_scheduler_forms(expression: str):
    assert config_from_mapping({"schedule": expression}).schedule == expression
    assert config_from_mapping({"schedule": f"  {expression} "}).schedule == expression


def test_no_schedule_by_default_and_it_leaves_the_run_id_alone():
    assert config_from_mapping({}).schedule is None
    assert config_from_mapping({"schedule": "null"}).schedule is None
    scheduled = config_from_mapping({"schedule": "rate(1 day)"})
    assert scheduled.job_fingerprint() == config_from_mapping({}).job_fingerprint()


# instanceTypes: the message names the role's key (instanceTypes.<role>) and the offending type.
BAD_FLEETS = [
    ({"core": ["m5.xlarge", "m6i.xlarge"]}, "instanceTypes.core", "3 to 5 distinct interchangeable types"),
    ({"task": ["m5.xlarge"] * 3}, "instanceTypes.task", "3 to 5 distinct"),
    ({"primary": ["m5.xlarge", "m6i.xlarge", "t3.huge"]}, "instanceTypes.primary", "one of m5.2xlarge"),
    (
        {"core": ["m5.xlarge", "m6i.xlarge", "m7g.xlarge"]},
        "instanceTypes.core",
        "chosen architecture (x86_64)",
    ),
]


@pytest.mark.parametrize(("fleets", "key", "allowed"), BAD_FLEETS, ids=[k for _, k, _ in BAD_FLEETS])
def test_bad_fleet_names_the_role(fleets, key, allowed):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"instanceTypes": json.dumps(fleets)})
    assert caught.value.key == key
    assert allowed in str(caught.value)


def test_an_architecture_without_a_lock_is_refused(tmp_path: Path):
    (tmp_path / "spark_job").mkdir()
    (tmp_path / "spark_job" / "requirements.x86_64.lock").write_text("")
    assert config_from_mapping({}, project_root=tmp_path).cluster_arch == "x86_64"
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"architecture": "arm64"}, project_root=tmp_path)
    assert caught.value.key == "architecture"
    assert "requirements.aarch64.lock is missing" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "allowed"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES]
)
def test_bad_value_names_key_value_and_what_is_allowed(key, value, allowed, tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({key: value}, base_dir=tmp_path)
    message = str(caught.value)
    assert caught.value.key == key
    assert f"{key}={value!r}" in message
    assert allowed in message


def test_weights_file_is_for_imagenet_only(tmp_path: Path):
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"\x89HDF")
    assert config_from_mapping({"weightsFile": "w.h5"}, base_dir=tmp_path).weights_file == weights.resolve()
    with pytest.raises(
        ConfigError, match=r"weightsFile=.*expected null while weights='s3://models-bucket/w.h5'"
    ):
        config_from_mapping({"weightsFile": str(weights), "weights": "s3://models-bucket/w.h5"})


@pytest.mark.parametrize(
    ("architecture", "arch", "preset"), [("x86_64", "x86_64", X86_PRESET), ("arm64", "aarch64", ARM_PRESET)]
)
def test_architecture_picks_the_preset_and_the_lock(architecture: str, arch: str, preset: tuple[str, ...]):
    config = config_from_mapping({"architecture": architecture})
    assert config.cluster_arch == arch
    assert config.primary_types == config.core_types == config.task_types == preset
    assert {arch_of_instance_type(t) for t in preset} == {arch}  # what runtime_deps says of each name


def test_size_preset():
    config = config_from_mapping({"instanceTypes": "general-2xlarge"})
    assert config.core_types == tuple(t.replace("xlarge", "2xlarge") for t in X86_PRESET)
    assert config.executor_sizing.executor_cores == 8


def test_components_and_variance_target_are_mutually_exclusive():
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"varianceTarget": "0.9", "components": "50"})
    message = str(caught.value)
    assert "components='50'" in message
    assert "varianceTarget=0.9" in message
    assert "mutually exclusive" in message


def run_app(tmp_path: Path, **context: object) -> subprocess.CompletedProcess[str]:
    """app.py as `cdk synth -c key=value` runs it: the context in CDK_CONTEXT_JSON."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), **context}),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    return subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_bad_value_fails_the_real_app_with_the_message(tmp_path: Path):
    result = run_app(tmp_path, coreCapacity="zero")
    assert result.returncode != 0
    assert "Invalid context value coreCapacity='zero': expected an integer from 1 to 50" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_bad_schedule_fails_the_real_app_naming_the_key_and_the_forms(tmp_path: Path):
    result = run_app(tmp_path, schedule="rate(5 minutes)")
    assert result.returncode != 0
    assert (
        "Invalid context value schedule='rate(5 minutes)': expected null (no schedule), or an "
        in result.stderr
    )
    for form in ("rate(N hour|hours|day|days)", "cron(minute hour day-of-month", "at(yyyy-mm-ddThh:mm:ss)"):
        assert form in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_an_unchecked_release_fails_the_real_app_naming_the_allowed_ones(tmp_path: Path):
    result = run_app(tmp_path, releaseLabel="emr-spark-8.0.0")
    assert result.returncode != 0
    assert (
        "Invalid context value releaseLabel='emr-spark-8.0.0': expected an EMR 7.x release label from "
        "emr-7.1.0 on (python3.11), e.g. emr-7.14.0, or a checked EMR 8 (LTS) label: emr-spark-8.1.0"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_unknown_key_fails_the_real_app_naming_the_nearest(tmp_path: Path):
    """`-c coreCapacty=3` would otherwise be ignored, and the user pay for 2 slots believing they asked for 3;
    CDK's own keys in the same context (cdk.json's feature flags, the CLI's aws:cdk:*) pass."""
    result = run_app(tmp_path, coreCapacty="3", **{"aws:cdk:enable-path-metadata": True})
    assert result.returncode != 0
    assert "Unknown context key 'coreCapacty'; did you mean 'coreCapacity'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize(
    ("key", "replacement"),
    [
        ("coreCount", "coreCapacity"),
        ("primaryInstanceType", "instanceTypes"),
        ("coreInstanceType", "instanceTypes"),
    ],
)
def test_replaced_keys_say_what_replaces_them(key: str, replacement: str):
    with pytest.raises(UnknownContextKeyError) as caught:
        check_context_keys([*DEFAULTS, key])
    assert caught.value.key == key
    assert f"Context key {key!r} is no longer read: use {replacement}" in str(caught.value)


def test_cdk_keys_pass_and_typos_name_the_nearest():
    check_context_keys(
        [
            *cdk_json_context(),  # the feature flags, @aws-cdk-containers/... included
            "aws:cdk:enable-asset-metadata",
            "cdk-toolkit",
            "availability-zones:account=123456789012:region=eu-west-3",  # a context provider's cache
        ]
    )
    for typo, nearest in [("taskMarkt", "taskMarket"), ("egres", "egress"), ("Architecture", "architecture")]:
        with pytest.raises(UnknownContextKeyError, match=f"did you mean {nearest!r}"):
            check_context_keys([typo])


def test_job_fingerprint_holds_every_cluster_and_job_setting():
    """The run id (and so the cluster) follows every setting of the cluster or the job, the idle timeout
    included: a finished run's cluster is TERMINATED and cannot take an in-place update."""
    base = config_from_mapping({}).job_fingerprint()
    assert set(base) == {
        "region",
        "release_label",
        "architecture",
        "primary_types",
        "core_types",
        "task_types",
        "core_capacity",
        "task_capacity",
        "task_market",
        "root_volume_size_gib",
        "idle_timeout_seconds",
        "variance_target",
        "components",
        "image_size",
        "weights",
        "input_uri",
        "egress",
    }
    assert config_from_mapping({"idleTimeoutSeconds": "300"}).job_fingerprint() != base
    assert config_from_mapping({"egress": "nat"}).job_fingerprint() != base
    assert config_from_mapping({"retainData": "false", "runId": "x1"}).job_fingerprint() == base
    assert config_from_mapping({"noncurrentVersionDays": "90"}).job_fingerprint() == base
