"""Fixtures for the ops CLI tests: an in-process moto server on loopback, reset before every test."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.waiter
import pytest
from moto.server import ThreadedMotoServer

from spark_job.contract.names import STEP_ACTION_ON_FAILURE
from tests.ops.support import (
    BUCKET,
    REGION,
    EmrCluster,
    fake_credentials_env,
    stack_template,
)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server in a thread on 127.0.0.1, on a port the OS picks (werkzeug binds port 0)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials pointed at a freshly reset emulator; returns the environment for subprocesses."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    env = fake_credentials_env(moto_endpoint, tmp_path)
    for key, value in env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def session(aws_env: dict[str, str]) -> boto3.Session:
    return boto3.Session(region_name=REGION)


@pytest.fixture
def s3(session: boto3.Session) -> Any:
    return session.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return BUCKET


@pytest.fixture
def deploy_stack(session: boto3.Session) -> Callable[..., None]:
    """Create a stack in the emulator with the given outputs (and optionally a bucket resource)."""
    cfn = session.client("cloudformation")

    def deploy(name: str, outputs: dict[str, str], bucket_name: str | None = None) -> None:
        cfn.create_stack(StackName=name, TemplateBody=stack_template(outputs, bucket_name))
        assert cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    return deploy


@pytest.fixture
def emr_cluster(session: boto3.Session, bucket: str) -> Callable[..., EmrCluster]:
    """Run a job flow with the pipeline's two steps (fit, transform), auto-terminating, like the stack's:
    same ActionOnFailure (a failed fit cancels transform, the cluster is not terminated by the step)."""
    emr = session.client("emr")

    def create(keep_alive: bool = False) -> EmrCluster:
        steps = [
            {
                "Name": name,
                "ActionOnFailure": STEP_ACTION_ON_FAILURE,
                "HadoopJarStep": {
                    "Jar": "command-runner.jar",
                    "Args": ["spark-submit", f"s3://{bucket}/code/entrypoint.py", name],
                },
            }
            for name in ("fit", "transform")
        ]
        cluster_id = emr.run_job_flow(
            Name="fruits",
            ReleaseLabel="emr-7.5.0",
            LogUri=f"s3://{bucket}/emr-logs/",
            Instances={
                "MasterInstanceType": "m5.xlarge",
                "SlaveInstanceType": "m5.xlarge",
                "InstanceCount": 3,
                "KeepJobFlowAliveWhenNoSteps": keep_alive,
            },
            Steps=steps,
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
        )["JobFlowId"]
        listed = emr.list_steps(ClusterId=cluster_id)["Steps"]
        return EmrCluster(id=cluster_id, step_ids={s["Name"]: s["Id"] for s in listed})

    return create


@pytest.fixture
def waiter_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[Callable[[], None]]], list[float]]:
    """Replace the waiters' sleep: each 'sleep' applies the next scripted change to the emulated cluster.

    Returns the list of requested delays, so tests can assert how many polls the waiters made.
    No test sleeps: time passes for the cluster when the waiter would have slept.
    """

    def install(script: list[Callable[[], None]]) -> list[float]:
        pending = list(script)
        delays: list[float] = []

        def sleep(seconds: float) -> None:
            delays.append(seconds)
            if pending:
                pending.pop(0)()

        monkeypatch.setattr(botocore.waiter, "time", SimpleNamespace(sleep=sleep))
        return delays

    return install
