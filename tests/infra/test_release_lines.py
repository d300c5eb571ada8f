"""The release lines (stacks/release_lines.py): each line's record agrees with what the cluster, the bootstrap
action, the job's version gates and the teardown do with it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from spark_job.shims.pyspark_private import PYSPARK_SERIES
from stacks import PROJECT_ROOT
from stacks.cluster import classifications, line_configurations
from stacks.config import config_from_mapping
from stacks.release_lines import (
    CHECKED_8X_LABELS,
    DEFAULT_LABELS,
    EMR_7,
    EMR_SPARK_8,
    ReleaseLine,
    UnknownReleaseError,
    release_line,
)
from stacks.sg_rule_revoker import EMR_ENDPOINT_TAGS, HANDLER_DIR
from stacks.spark_settings import PYTHON_KEYS, spark_defaults

LINES = [EMR_7, EMR_SPARK_8]
SIZING = config_from_mapping({}).executor_sizing


@pytest.mark.parametrize("line", LINES, ids=lambda line: line.name)
def test_the_cluster_uses_only_classifications_its_line_has(line: ReleaseLine):
    used = classifications(line_configurations(line, SIZING, "eu-west-3"))
    assert used == {"spark-env", "spark-defaults", "yarn-site"}
    assert used <= line.classifications


def test_emrfs_is_a_7x_classification_only():
    """EMRFS is gone on 8.x (s3:// is S3A): its classification is not there to be used."""
    assert "emrfs-site" in EMR_7.classifications
    assert "emrfs-site" not in EMR_SPARK_8.classifications


def test_a_classification_the_line_lacks_fails_at_synth_naming_its_page():
    narrow = replace(EMR_SPARK_8, classifications=frozenset({"spark-env", "spark-defaults"}))
    with pytest.raises(ValueError, match=r"\['yarn-site'\] are not checked for emr-spark-8.x .*emr-spark810"):
        line_configurations(narrow, SIZING, "eu-west-3")


@pytest.mark.parametrize("line", LINES, ids=lambda line: line.name)
def test_spark_runs_on_the_line_interpreter(line: ReleaseLine):
    configurations = {c.classification: c for c in line_configurations(line, SIZING, "eu-west-3")}
    (export,) = configurations["spark-env"].configurations  # type: ignore[union-attr]
    assert dict(export.configuration_properties) == {  # type: ignore[attr-defined]
        "PYSPARK_PYTHON": line.python,
        "PYSPARK_DRIVER_PYTHON": line.python,
    }
    defaults = dict(configurations["spark-defaults"].configuration_properties)  # type: ignore[arg-type]
    assert {key: defaults[key] for key in PYTHON_KEYS} == dict.fromkeys(PYTHON_KEYS, line.python)
    other = spark_defaults(SIZING, "eu-west-3", "/opt/python3.13/bin/python3")
    assert {other[key] for key in PYTHON_KEYS} == {"/opt/python3.13/bin/python3"}


def test_the_bootstrap_installs_into_the_interpreter_of_every_line():
    """The bootstrap action is not told its interpreter: its default must be each line's (a line on another
    Python would need the stack to pass it)."""
    script = (PROJECT_ROOT / "bootstrap" / "install_python_deps.sh").read_text()
    match = re.search(r'^PYTHON="\$\{FRUITS_PYTHON:-([^}]+)\}"$', script, re.MULTILINE)
    assert match is not None
    assert {line.python for line in LINES} == {match.group(1)}


def test_the_job_is_gated_on_exactly_the_lines_spark_series():
    """The shim's private APIs are checked on the series the allowed labels run, no other (4.0 is not one)."""
    assert tuple(f"{line.spark_series}." for line in LINES) == PYSPARK_SERIES
    assert {release_line(label).spark_series for label in DEFAULT_LABELS.values()} == set(DEFAULT_LABELS)
    for series, label in DEFAULT_LABELS.items():
        assert release_line(label).spark_series == series


def test_the_checked_8x_labels_are_the_lts_one_only():
    assert list(CHECKED_8X_LABELS) == ["emr-spark-8.1.0"]
    for label in ("emr-spark-8.0.0", "emr-spark-8.1.1", "emr-7.0.0", "emr-6.15.0", ""):
        with pytest.raises(UnknownReleaseError, match=r"emr-spark-8\.1\.0"):
            release_line(label)


def test_only_the_8x_line_has_the_service_endpoint():
    assert (EMR_7.service_endpoint, EMR_SPARK_8.service_endpoint) == (False, True)
    assert EMR_SPARK_8.release_page.endswith("emr-spark810-release.html")


def test_the_teardown_deletes_by_the_tags_emr_must_create_its_endpoint_with():
    """The Lambda handler (standard library and boto3 only) has its own copy of the tags: the same ones."""
    spec = importlib.util.spec_from_file_location("sg_revoker_index", HANDLER_DIR / "index.py")
    assert spec is not None and spec.loader is not None
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    assert handler.EMR_ENDPOINT_TAGS == EMR_ENDPOINT_TAGS
    assert handler.EMR_SERVICE_NAME.match("aws.api.eu-west-3.emr-service-cell01")
    assert not handler.EMR_SERVICE_NAME.match("com.amazonaws.eu-west-3.elasticmapreduce")


def release_series(cdk_out: Path) -> subprocess.CompletedProcess[str]:
    """scripts/release_series.py, as scripts/deploy_check.sh runs it to pick the step contract's venv."""
    script = PROJECT_ROOT / "scripts" / "release_series.py"
    command = [sys.executable, str(script), str(cdk_out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def assembly(tmp_path: Path, *labels: str) -> Path:
    for index, label in enumerate(labels):
        cluster = {"Type": "AWS::EMR::Cluster", "Properties": {"ReleaseLabel": label}}
        template = {"Resources": {"Cluster": cluster, "Other": {"Type": "AWS::S3::Bucket"}}}
        (tmp_path / f"Stack{index}.template.json").write_text(json.dumps(template))
    return tmp_path


@pytest.mark.parametrize(("label", "series"), [("emr-7.14.0", "3.5"), ("emr-spark-8.1.0", "4.1")])
def test_deploy_check_runs_the_step_contract_on_the_synthesized_line(tmp_path: Path, label: str, series: str):
    result = release_series(assembly(tmp_path, label))
    assert (result.returncode, result.stdout) == (0, f"{series}\n")


@pytest.mark.parametrize("labels", [(), ("emr-7.14.0", "emr-7.14.0"), ("emr-spark-8.0.0",)])
def test_no_venv_is_picked_without_one_checked_cluster(tmp_path: Path, labels: tuple[str, ...]):
    result = release_series(assembly(tmp_path, *labels))
    assert result.returncode == 1 and result.stdout == ""
    assert ("emr-spark-8.1.0" if labels == ("emr-spark-8.0.0",) else "expected one AWS::EMR::Cluster") in (
        result.stderr
    )
