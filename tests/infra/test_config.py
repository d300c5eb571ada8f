"""AppConfig: cdk.json defaults, CLI strings parsed, every bad value failing synth with a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import PROJECT_ROOT
from stacks.config import DEFAULTS, AppConfig, ConfigError, config_from_mapping
from tests.infra.conftest import CDK_JSON, cdk_json_context


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
        primary_instance_type="m5.xlarge",
        core_instance_type="m5.xlarge",
        core_count=2,
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
    )


def test_command_line_strings_are_parsed(tmp_path: Path):
    (tmp_path / "fruits").mkdir()
    config = config_from_mapping(
        {
            "coreCount": "3",
            "rootVolumeSizeGiB": "64",
            "idleTimeoutSeconds": "600",
            "retainData": "false",
            "components": "50",
            "imageSize": "160",
            "inputUri": "s3://other-bucket/fruits-360/",
            "weights": "s3://models-bucket/mobilenet_v2.h5",
            "uploadDir": "fruits",
            "runId": "2026-11-21a",
        },
        base_dir=tmp_path,
    )
    assert config.core_count == 3
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
    ("primaryInstanceType", "huge", "EC2 instance type"),
    ("coreInstanceType", "", "EC2 instance type"),
    ("coreCount", "zero", "integer from 1 to 50"),
    ("coreCount", "0", "integer from 1 to 50"),
    ("coreCount", 51, "integer from 1 to 50"),
    ("coreCount", True, "integer from 1 to 50"),
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
]


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


def test_components_and_variance_target_are_mutually_exclusive():
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"varianceTarget": "0.9", "components": "50"})
    message = str(caught.value)
    assert "components='50'" in message
    assert "varianceTarget=0.9" in message
    assert "mutually exclusive" in message


def test_bad_value_fails_the_real_app_with_the_message(tmp_path: Path):
    """`cdk synth -c coreCount=zero` runs app.py with the context in CDK_CONTEXT_JSON: it must stop."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), "coreCount": "zero"}),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "Invalid context value coreCount='zero': expected an integer from 1 to 50" in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_job_fingerprint_holds_every_cluster_and_job_setting():
    """The run id (and so the cluster) follows every setting of the cluster or the job, the idle timeout
    included: a finished run's cluster is TERMINATED and cannot take an in-place update."""
    base = config_from_mapping({}).job_fingerprint()
    assert set(base) == {
        "region",
        "release_label",
        "primary_instance_type",
        "core_instance_type",
        "core_count",
        "root_volume_size_gib",
        "idle_timeout_seconds",
        "variance_target",
        "components",
        "image_size",
        "weights",
        "input_uri",
    }
    assert config_from_mapping({"idleTimeoutSeconds": "300"}).job_fingerprint() != base
    assert config_from_mapping({"retainData": "false", "runId": "x1"}).job_fingerprint() == base
    assert config_from_mapping({"noncurrentVersionDays": "90"}).job_fingerprint() == base
