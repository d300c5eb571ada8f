"""``status [RUN] [--follow]``: a run's EMR cluster and its steps (fit, transform); the newest run by default.

A run is the deploy's, one started by `make run` or by the schedule: ops/clusters.py finds its cluster."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from ops.aws import Aws
from ops.clusters import RunCluster
from ops.config import EXIT_OK, EXIT_STEP_FAILED, OpsError
from spark_job.contract.names import RUNS_PREFIX

log = logging.getLogger(__name__)

STEP_DONE = {"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"}
STEP_BAD = {"FAILED", "CANCELLED", "INTERRUPTED"}
CLUSTER_DONE = {"TERMINATED", "TERMINATED_WITH_ERRORS"}


@dataclass(frozen=True)
class StepView:
    id: str
    name: str
    state: str
    started: datetime | None
    ended: datetime | None
    failure: dict[str, str]

    @classmethod
    def from_api(cls, step: dict[str, Any]) -> StepView:
        status = step["Status"]
        timeline = status.get("Timeline", {})
        return cls(
            id=step["Id"],
            name=step["Name"],
            state=status["State"],
            started=timeline.get("StartDateTime"),
            ended=timeline.get("EndDateTime"),
            failure=status.get("FailureDetails", {}),
        )


def elapsed(start: datetime | None, end: datetime | None, now: datetime) -> str:
    if start is None:
        return "-"
    seconds = max(0, int(((end or now) - start).total_seconds()))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def s3_uri(uri: str) -> str:
    """EMR reports log URIs as s3n://; the console and the AWS CLI want s3://."""
    for scheme in ("s3n://", "s3a://"):
        if uri.startswith(scheme):
            return "s3://" + uri[len(scheme) :]
    return uri


def stderr_uri(log_uri: str, cluster_id: str, step_id: str) -> str:
    return f"{s3_uri(log_uri).rstrip('/')}/{cluster_id}/steps/{step_id}/stderr.gz"


def console_url(region: str, cluster_id: str) -> str:
    return f"https://{region}.console.aws.amazon.com/emr/home?region={region}#/clusterDetails/{cluster_id}"


class ClusterStatus:
    """`run`'s cluster; `others`: other runs still up, listed after it."""

    def __init__(
        self,
        aws: Aws,
        run: RunCluster,
        others: Sequence[RunCluster] = (),
        out: Callable[[str], None] = print,
    ) -> None:
        self.aws = aws
        self.run = run
        self.others = others
        self.out = out
        self.cluster_id = run.cluster_id

    def describe_cluster(self) -> dict[str, Any]:
        try:
            return self.aws.emr.describe_cluster(ClusterId=self.cluster_id)["Cluster"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRequestException":
                where = (
                    f" (output ClusterId of stack {self.aws.config.stack_name})"
                    if self.run.stack_owned
                    else ""
                )
                raise OpsError(
                    f"EMR cluster {self.cluster_id}{where} "
                    f"is not known to EMR in {self.aws.config.region}: {exc.response['Error']['Message']}"
                ) from exc
            raise

    def steps(self) -> list[StepView]:
        """The cluster's steps in submission order (ListSteps returns the newest first)."""
        api_steps: list[dict[str, Any]] = []
        for page in self.aws.emr.get_paginator("list_steps").paginate(ClusterId=self.cluster_id):
            api_steps.extend(page["Steps"])
        api_steps.reverse()
        api_steps.sort(key=lambda s: s["Status"].get("Timeline", {}).get("CreationDateTime") or 0)
        return [StepView.from_api(s) for s in api_steps]

    def log_uri(self, cluster: dict[str, Any]) -> str | None:
        return cluster.get("LogUri") or self.aws.stack_outputs().get("LogUri")

    def report(self) -> int:
        """Print the cluster and its steps; EXIT_STEP_FAILED if a step or the cluster failed."""
        cluster = self.describe_cluster()
        steps = self.steps()
        now = datetime.now(UTC)
        status = cluster["Status"]
        timeline = status.get("Timeline", {})
        self.out(f"Run      {self.run.run_id} -> s3://{self.aws.bucket()}/{RUNS_PREFIX}{self.run.run_id}/")
        self.out(
            f"Cluster  {self.cluster_id}  {status['State']}  "
            f"{elapsed(timeline.get('CreationDateTime'), timeline.get('EndDateTime'), now)}"
        )
        self.out(f"Console  {console_url(self.aws.config.region, self.cluster_id)}")
        if steps:
            width = max(len(s.name) for s in steps)
            for step in steps:
                self.out(
                    f"  {step.name:<{width}}  {step.state:<11} {elapsed(step.started, step.ended, now):>9}"
                    f"  {step.id}"
                )
        else:
            self.out("  (no steps)")
        failed = False
        if status["State"] == "TERMINATED_WITH_ERRORS":
            failed = True
            reason = status.get("StateChangeReason", {})
            detail = ": ".join(part for part in (reason.get("Code"), reason.get("Message")) if part)
            self.out(f"Cluster failed: {detail or 'no reason given'}")
        log_uri = self.log_uri(cluster)
        for step in steps:
            if step.state not in STEP_BAD:
                continue
            failed = True
            if step.state != "FAILED":
                self.out(f"Step {step.name} {step.state}")
                continue
            where = stderr_uri(log_uri, self.cluster_id, step.id) if log_uri else "(cluster has no LogUri)"
            self.out(f"Step {step.name} FAILED; its stderr: {where}{self._log_note(where)}")
            if step.failure.get("Message"):
                self.out(f"  reason: {step.failure.get('Reason', '')} {step.failure['Message']}".rstrip())
            if step.failure.get("LogFile") and s3_uri(step.failure["LogFile"]) != where:
                self.out(f"  EMR log file: {s3_uri(step.failure['LogFile'])}")
        for other in self.others:
            self.out(f"Also up: run {other.run_id}  {other.cluster_id}  {other.state}")
        return EXIT_STEP_FAILED if failed else EXIT_OK

    def _log_note(self, uri: str) -> str:
        if not uri.startswith("s3://"):
            return ""
        bucket, _, key = uri[len("s3://") :].partition("/")
        try:
            self.aws.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return " (not in S3 yet: EMR copies step logs there every few minutes)"
        return ""

    def follow(self) -> int:
        """Wait with the EMR waiters until every step has ended (and an auto-terminating cluster is gone)."""
        config = self.aws.config
        deadline = time.monotonic() + config.timeout_seconds
        emr = self.aws.emr
        cluster = self.describe_cluster()
        for step in self.steps():
            if step.state in STEP_DONE:
                continue
            log.info("waiting for step %s (%s), now %s", step.name, step.id, step.state)
            try:
                emr.get_waiter("step_complete").wait(
                    ClusterId=self.cluster_id, StepId=step.id, WaiterConfig=self._waiter_config(deadline)
                )
            except WaiterError as exc:
                state = (exc.last_response or {}).get("Step", {}).get("Status", {}).get("State")
                if state not in STEP_DONE:
                    raise self._waiter_failure(f"step {step.name}", exc) from exc
                log.info("step %s ended %s", step.name, state)
                return self.report()
            log.info("step %s completed", step.name)
        if any(step.state in STEP_BAD for step in self.steps()):
            # A failed step cancels the ones after it (CANCEL_AND_WAIT): the run is over. The cluster ends
            # by itself (no step left, or the idle timeout if it sits in WAITING): no need to wait for it.
            return self.report()
        cluster = self.describe_cluster()
        if cluster.get("AutoTerminate") and cluster["Status"]["State"] not in CLUSTER_DONE:
            log.info("waiting for cluster %s to terminate", self.cluster_id)
            try:
                emr.get_waiter("cluster_terminated").wait(
                    ClusterId=self.cluster_id, WaiterConfig=self._waiter_config(deadline)
                )
            except WaiterError as exc:
                state = (exc.last_response or {}).get("Cluster", {}).get("Status", {}).get("State")
                if state not in CLUSTER_DONE:
                    raise self._waiter_failure(f"cluster {self.cluster_id}", exc) from exc
        elif not cluster.get("AutoTerminate"):
            log.warning("cluster %s stays up after its steps and bills until `make destroy`", self.cluster_id)
        return self.report()

    def _waiter_config(self, deadline: float) -> dict[str, int]:
        poll = max(1, self.aws.config.poll_seconds)
        remaining = max(0.0, deadline - time.monotonic())
        return {"Delay": poll, "MaxAttempts": max(1, math.ceil(remaining / poll) + 1)}

    def _waiter_failure(self, what: str, exc: WaiterError) -> OpsError:
        if "Max attempts exceeded" in str(exc):
            return OpsError(
                f"gave up waiting for {what} after {self.aws.config.timeout_seconds}s "
                "(--timeout); it is still running: `make status` shows it"
            )
        return OpsError(f"waiting for {what} failed: {exc}")
