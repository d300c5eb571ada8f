"""The EMR clusters of this deployment's runs, whoever started them: `cdk deploy`, `make run` or the schedule.

Every run's cluster is named `fruits-pipeline-<run id>` and tagged with its run id and the pipeline stack's
name (stacks/run_contract.py). ListClusters gives names and states (EMR lists a cluster for about two months
after it ends), DescribeCluster the tags. The stack's own cluster is also found through its ClusterId output,
so a stack deployed before the tags existed still shows its run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from ops.aws import Aws
from ops.config import OpsError
from stacks.run_contract import RUN_ID_TAG, STACK_TAG, run_id_of_cluster_name

log = logging.getLogger(__name__)

# Cluster states in which a cluster still runs (and bills): ListClusters' ClusterStates values.
ACTIVE_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING")


@dataclass(frozen=True)
class RunCluster:
    run_id: str
    cluster_id: str
    state: str
    created: datetime | None
    stack_owned: bool = False  # the stack's AWS::EMR::Cluster (CloudFormation deletes it with the stack)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def _created(cluster: dict[str, Any]) -> datetime | None:
    created: datetime | None = cluster.get("Status", {}).get("Timeline", {}).get("CreationDateTime")
    return created


def _newest_first(clusters: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(clusters, key=lambda c: (_created(c) is not None, _created(c) or 0), reverse=True)


def _stack_cluster(aws: Aws) -> tuple[str, str] | None:
    """(cluster id, run id) from the pipeline stack's outputs; None when it is not deployed or has none."""
    try:
        outputs = aws.stack_outputs()
    except OpsError:
        return None
    if "ClusterId" not in outputs or "RunId" not in outputs:
        return None
    return outputs["ClusterId"], outputs["RunId"]


def run_clusters(
    aws: Aws, *, states: Iterable[str] | None = None, limit: int | None = None
) -> list[RunCluster]:
    """This stack's run clusters (in `states`, if given), newest first; at most `limit` of them."""
    emr = aws.emr
    stack_name = aws.config.stack_name
    wanted = tuple(states) if states else None
    summaries: list[dict[str, Any]] = []
    paginate = {"ClusterStates": list(wanted)} if wanted else {}
    for page in emr.get_paginator("list_clusters").paginate(**paginate):
        summaries.extend(c for c in page["Clusters"] if run_id_of_cluster_name(c["Name"]) is not None)
    own = _stack_cluster(aws)
    found: list[RunCluster] = []
    for summary in _newest_first(summaries):
        if limit is not None and len(found) >= limit:
            break
        cluster = emr.describe_cluster(ClusterId=summary["Id"])["Cluster"]
        tags = {tag["Key"]: tag["Value"] for tag in cluster.get("Tags", [])}
        if tags.get(STACK_TAG) != stack_name:
            continue  # another deployment's, in the same account and region
        found.append(
            RunCluster(
                run_id=tags.get(RUN_ID_TAG) or run_id_of_cluster_name(summary["Name"]) or "?",
                cluster_id=summary["Id"],
                state=summary["Status"]["State"],
                created=_created(summary),
                stack_owned=own is not None and own[0] == summary["Id"],
            )
        )
    if own is not None and own[0] not in {c.cluster_id for c in found}:
        stack_run = _describe_stack_cluster(aws, *own)
        if stack_run is not None and (wanted is None or stack_run.state in wanted):
            found.append(stack_run)
    found.sort(key=lambda c: (c.created is not None, c.created or 0), reverse=True)
    return found[:limit] if limit is not None else found


def _describe_stack_cluster(aws: Aws, cluster_id: str, run_id: str) -> RunCluster | None:
    """The stack's own cluster, untagged (deployed before the tags); None when EMR no longer knows it."""
    try:
        cluster = aws.emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRequestException":
            log.debug("the stack's cluster %s is unknown to EMR: %s", cluster_id, exc)
            return None
        raise
    return RunCluster(
        run_id=run_id,
        cluster_id=cluster_id,
        state=cluster["Status"]["State"],
        created=_created(cluster),
        stack_owned=True,
    )


def find_run(aws: Aws, run_id: str | None) -> RunCluster:
    """The cluster of `run_id` (its newest, should an id have run twice), or of the newest run.

    With no run cluster known to EMR, the newest run is the stack's own (its ClusterId and RunId outputs),
    whatever EMR says of that cluster (ClusterStatus reports it).
    """
    if run_id is None:
        newest = run_clusters(aws, limit=1)
        if newest:
            return newest[0]
        return RunCluster(
            run_id=aws.output("RunId"),
            cluster_id=aws.output("ClusterId"),
            state="",
            created=None,
            stack_owned=True,
        )
    clusters = run_clusters(aws)
    for cluster in clusters:
        if cluster.run_id == run_id:
            return cluster
    known = ", ".join(c.run_id for c in clusters[:10]) or "none"
    raise OpsError(
        f"no EMR cluster of run {run_id} for stack {aws.config.stack_name} in {aws.config.region} (EMR lists "
        f"clusters for about two months after they end; newest runs: {known}). `make runs` lists every run "
        "with results"
    )
