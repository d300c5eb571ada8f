"""What a run's EMR cluster carries, so that `ops` can start one and find it again: no CDK import here.

A run is one transient cluster, started by `cdk deploy` (the stack's own AWS::EMR::Cluster), by
`make run` (`python -m ops run`) or by the optional EventBridge Scheduler schedule. All three start the
same definition (stacks/cluster.py), which differs between runs by the run id only:

- the cluster's name, CLUSTER_NAME_PREFIX + run id;
- its tags: RUN_ID_TAG = run id, STACK_TAG = the pipeline stack's name (how `ops` tells this
  deployment's clusters from any other in the account);
- the steps' output folder, s3://<data bucket>/runs/<run id>/.

The stack publishes the EMR RunJobFlow request with RUN_ID_PLACEHOLDER wherever the run id goes;
`ops run` puts a new run id there, and the schedule's copy of the request has SCHEDULED_RUN_ID there
instead, which EventBridge Scheduler completes at each invocation.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

CLUSTER_NAME_PREFIX = "fruits-pipeline-"
RUN_ID_TAG = "fruits-pipeline:run-id"
STACK_TAG = "fruits-pipeline:stack"
# Where the run id goes in the published request. Angle brackets like Scheduler's own context attributes;
# no `${`, which cfn-lint would read as an Fn::Sub variable outside Fn::Sub.
RUN_ID_PLACEHOLDER = "<fruits-pipeline.run-id>"
# EventBridge Scheduler replaces <aws.scheduler.execution-id> in a target's Input with "the unique ID that
# EventBridge Scheduler assigns for each attempted invocation of a target", e.g. d32c5kddcf5bb8c3:
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html
# Not <aws.scheduler.scheduled-time>: its colons (2022-03-22T18:59:43Z) do not belong in a Hadoop path.
SCHEDULER_EXECUTION_ID = "<aws.scheduler.execution-id>"
SCHEDULED_RUN_PREFIX = "scheduled-"
SCHEDULED_RUN_ID = SCHEDULED_RUN_PREFIX + SCHEDULER_EXECUTION_ID
MANUAL_RUN_PREFIX = "manual-"
# The same rule as the runId context key (stacks/config.py): a folder name under runs/ and a cluster name.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
RUN_ID_RULE = "1 to 63 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"


def new_manual_run_id(now: datetime) -> str:
    """`manual-<UTC date>-<time>-<4 hex>`: sorts by start time; two starts in the same second differ."""
    return f"{MANUAL_RUN_PREFIX}{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def cluster_name(run_id: str) -> str:
    return CLUSTER_NAME_PREFIX + run_id


def run_id_of_cluster_name(name: str) -> str | None:
    return name[len(CLUSTER_NAME_PREFIX) :] if name.startswith(CLUSTER_NAME_PREFIX) else None


def with_run_id(request: Any, run_id: str, placeholder: str = RUN_ID_PLACEHOLDER) -> Any:
    """`request` (JSON data) with every occurrence of `placeholder` in its strings replaced by `run_id`."""
    if isinstance(request, str):
        return request.replace(placeholder, run_id)
    if isinstance(request, list):
        return [with_run_id(item, run_id, placeholder) for item in request]
    if isinstance(request, Mapping):
        return {key: with_run_id(value, run_id, placeholder) for key, value in request.items()}
    return request


def mentions(request: Any, text: str) -> bool:
    """Whether any string in `request` (JSON data) contains `text`."""
    if isinstance(request, str):
        return text in request
    if isinstance(request, list):
        return any(mentions(item, text) for item in request)
    if isinstance(request, Mapping):
        return any(mentions(value, text) for value in request.values())
    return False
