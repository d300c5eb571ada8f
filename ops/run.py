"""``run [RUN]``: start one run now, on the deployed cluster definition, without touching any stack.

The pipeline stack publishes the EMR RunJobFlow request of its cluster in an SSM parameter (output
RunRequestParameter; stacks/run_launch.py), the run id left as a placeholder. This puts a new run id there
and calls RunJobFlow: the same fleets, bootstrap action, configurations, security configuration, roles,
subnets, log location, auto-termination and steps as the deploy's cluster, writing to runs/<run id>/.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ops.aws import Aws
from ops.clusters import ACTIVE_STATES, run_clusters
from ops.config import OpsError
from spark_job.contract.names import RUNS_PREFIX
from stacks.run_contract import (
    RUN_ID_PATTERN,
    RUN_ID_PLACEHOLDER,
    RUN_ID_RULE,
    mentions,
    new_manual_run_id,
    with_run_id,
)

log = logging.getLogger(__name__)

REQUEST_OUTPUT = "RunRequestParameter"


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    cluster_id: str
    output_uri: str  # s3://<bucket>/runs/<run id>/


def published_request(aws: Aws) -> dict[str, object]:
    """The RunJobFlow request the stack published, its run id still the placeholder."""
    outputs = aws.stack_outputs()
    if REQUEST_OUTPUT not in outputs:
        raise OpsError(
            f"stack {aws.config.stack_name} publishes no run request (no output {REQUEST_OUTPUT}): it was "
            "deployed before `make run` existed; deploy it once more (`make deploy`)"
        )
    name = outputs[REQUEST_OUTPUT]
    value = aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    try:
        request = json.loads(value)
    except ValueError as exc:
        raise OpsError(f"SSM parameter {name} is not the JSON of a RunJobFlow request: {exc}") from exc
    if not isinstance(request, dict) or not mentions(request, RUN_ID_PLACEHOLDER):
        raise OpsError(f"SSM parameter {name} holds no run id placeholder {RUN_ID_PLACEHOLDER}: redeploy")
    return request


def start_run(
    aws: Aws, run_id: str | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> StartedRun:
    """Start a run under `run_id` (default: a new manual-<date>-<time>-<hex> id) and return its cluster."""
    request = published_request(aws)
    bucket = aws.bucket()
    if run_id is None:
        run_id = new_manual_run_id(now())
    else:
        if not RUN_ID_PATTERN.match(run_id):
            raise OpsError(f"invalid run id {run_id!r}: {RUN_ID_RULE}")
        _refuse_a_used_run_id(aws, bucket, run_id)
    cluster_id = aws.emr.run_job_flow(**with_run_id(request, run_id))["JobFlowId"]
    log.info("started cluster %s for run %s", cluster_id, run_id)
    return StartedRun(
        run_id=run_id, cluster_id=cluster_id, output_uri=f"s3://{bucket}/{RUNS_PREFIX}{run_id}/"
    )


def _refuse_a_used_run_id(aws: Aws, bucket: str, run_id: str) -> None:
    """Runs are immutable: an id with outputs or a cluster already is refused before any cluster starts."""
    prefix = f"{RUNS_PREFIX}{run_id}/"
    if aws.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0):
        raise OpsError(f"run {run_id} already has outputs under s3://{bucket}/{prefix}: choose a new run id")
    used = [c for c in run_clusters(aws) if c.run_id == run_id]
    if used:
        raise OpsError(
            f"run {run_id} already has cluster {used[0].cluster_id} ({used[0].state}): choose a new run id"
        )


def refuse_destroy_while_runs_are_up(aws: Aws) -> None:
    """OpsError while a cluster of this stack that CloudFormation did not create is up: it uses the stack's
    subnets, security groups and roles, which `cdk destroy` would then fail to delete (or pull from under
    it). The stack's own cluster is CloudFormation's to terminate."""
    try:
        aws.stack_outputs()
    except OpsError:
        return  # no pipeline stack: nothing of it to delete under a cluster
    up = [c for c in run_clusters(aws, states=ACTIVE_STATES) if not c.stack_owned]
    if up:
        listed = "; ".join(f"run {c.run_id}: cluster {c.cluster_id} {c.state}" for c in up)
        ids = " ".join(c.cluster_id for c in up)
        raise OpsError(
            f"not destroying {aws.config.stack_name}: {len(up)} run(s) started outside CloudFormation still "
            f"use its subnets, security groups and roles ({listed}). Wait for them (`make follow RUN=<run>`) "
            f"or end them (`aws emr terminate-clusters --cluster-ids {ids}`), then `make destroy` again"
        )
