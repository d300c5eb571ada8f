"""Constants and helpers shared by the ops CLI tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from moto.emr.models import emr_backends

from spark_job.contract.names import LOGS_PREFIX, RUNS_PREFIX

ACCOUNT = "123456789012"
REGION = "eu-west-3"
BUCKET = "fruitsdata-databucket-test"
RUN_ID = "2026-11-21a"
REPO = Path(__file__).resolve().parents[2]


def fake_credentials_env(endpoint: str, home: Path) -> dict[str, str]:
    """Environment for a process talking to the emulator with fake credentials and nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint,
        AWS_CONFIG_FILE=str(home / "aws-config-absent"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials-absent"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def stack_template(outputs: dict[str, str], bucket_name: str | None) -> str:
    resources: dict[str, Any]
    if bucket_name:
        resources = {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket_name}}}
    else:
        resources = {"Marker": {"Type": "AWS::SNS::Topic"}}
    return json.dumps(
        {
            "Resources": resources,
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
    )


def pipeline_outputs(cluster_id: str, bucket: str = BUCKET, run_id: str = RUN_ID) -> dict[str, str]:
    """The FruitsPipeline outputs of the contract."""
    return {
        "BucketName": bucket,
        "ClusterId": cluster_id,
        "RunId": run_id,
        "RunOutputUri": f"s3://{bucket}/{RUNS_PREFIX}{run_id}/",
        "LogUri": f"s3://{bucket}/{LOGS_PREFIX}",
        "ClusterConsoleUrl": f"https://{REGION}.console.aws.amazon.com/emr/home?region={REGION}"
        f"#/clusterDetails/{cluster_id}",
    }


@dataclass
class EmrCluster:
    """A cluster created through the EMR API, with moto's backend objects to set states on."""

    id: str
    step_ids: dict[str, str]

    @property
    def model(self) -> Any:
        # Behind AWS_ENDPOINT_URL=http://127.0.0.1 moto's EMR cannot read the region from the host name
        # and files the cluster under its default region.
        for region in (REGION, "us-east-1"):
            clusters = emr_backends[ACCOUNT][region].clusters
            if self.id in clusters:
                return clusters[self.id]
        raise KeyError(self.id)

    def step(self, name: str) -> Any:
        return next(s for s in self.model.steps if s.name == name)

    def set_step(
        self, name: str, state: str, started_ago: float | None = None, ran_for: float | None = None
    ) -> None:
        step = self.step(name)
        step.state = state
        now = datetime.now(UTC)
        if state == "PENDING":
            step.start_date_time = step.end_date_time = None
        if started_ago is not None:
            step.start_date_time = now - timedelta(seconds=started_ago)
        if ran_for is not None:
            step.end_date_time = step.start_date_time + timedelta(seconds=ran_for)

    def set_cluster(self, state: str, reason: str | None = None) -> None:
        cluster = self.model
        cluster.state = state
        if state.startswith("TERMINATED"):
            cluster.end_datetime = datetime.now(UTC)
        if reason:
            cluster.last_state_change_reason = reason
