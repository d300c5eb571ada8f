"""`status` and `status --follow` against EMR clusters and steps created in the emulator."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from ops.cli import main
from tests.ops.support import BUCKET, REPO, EmrCluster, pipeline_outputs

STACK = "FruitsPipeline"


@pytest.fixture
def deployed(
    emr_cluster: Callable[..., EmrCluster], deploy_stack: Callable[..., None]
) -> Callable[..., EmrCluster]:
    def make(**kwargs: Any) -> EmrCluster:
        cluster = emr_cluster(**kwargs)
        deploy_stack(STACK, pipeline_outputs(cluster.id))
        return cluster

    return make


def step_line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(name + " "))


def stderr_path(cluster: EmrCluster, step: str) -> str:
    return f"s3://{BUCKET}/emr-logs/{cluster.id}/steps/{cluster.step_ids[step]}/stderr.gz"


def test_running_cluster_shows_states_and_elapsed_times(deployed, session, capsys) -> None:
    cluster = deployed()
    cluster.set_cluster("RUNNING")
    cluster.set_step("fit", "COMPLETED", started_ago=3600, ran_for=312)
    cluster.set_step("transform", "RUNNING", started_ago=90)

    assert main(["status"], session=session) == 0

    out = capsys.readouterr().out
    assert f"Cluster  {cluster.id}  RUNNING" in out
    assert f"Run      2026-11-21a -> s3://{BUCKET}/runs/2026-11-21a/" in out
    assert "clusterDetails/" + cluster.id in out
    fit, transform = step_line(out, "fit"), step_line(out, "transform")
    assert out.index(fit) < out.index(transform), "steps are listed in submission order"
    assert re.search(r"COMPLETED\s+0:05:12\s+" + cluster.step_ids["fit"], fit)
    assert re.search(r"RUNNING\s+0:01:(29|3\d)\s+" + cluster.step_ids["transform"], transform)
    assert "stderr" not in out


@pytest.mark.parametrize(
    ("cluster_state", "fit", "transform", "code"),
    [
        ("STARTING", "PENDING", "PENDING", 0),
        ("BOOTSTRAPPING", "PENDING", "PENDING", 0),
        ("RUNNING", "RUNNING", "PENDING", 0),
        ("RUNNING", "COMPLETED", "CANCEL_PENDING", 0),
        ("WAITING", "COMPLETED", "COMPLETED", 0),
        ("TERMINATING", "COMPLETED", "COMPLETED", 0),
        ("TERMINATED", "COMPLETED", "COMPLETED", 0),
        ("RUNNING", "COMPLETED", "INTERRUPTED", 1),
        ("TERMINATED", "COMPLETED", "CANCELLED", 1),
        ("TERMINATED_WITH_ERRORS", "FAILED", "CANCELLED", 1),
        ("TERMINATED_WITH_ERRORS", "CANCELLED", "CANCELLED", 1),
    ],
)
def test_every_state_is_reported_with_its_exit_code(
    deployed, session, capsys, cluster_state: str, fit: str, transform: str, code: int
) -> None:
    cluster = deployed()
    cluster.set_cluster(cluster_state)
    for name, state in (("fit", fit), ("transform", transform)):
        started = None if state == "PENDING" else 600
        cluster.set_step(name, state, started_ago=started)

    assert main(["status"], session=session) == code

    out = capsys.readouterr().out
    assert f"{cluster.id}  {cluster_state} " in out
    assert re.search(rf"fit\s+{fit}\s", step_line(out, "fit"))
    assert re.search(rf"transform\s+{transform}\s", step_line(out, "transform"))
    if fit == "PENDING":
        assert re.search(r"PENDING\s+-\s+s-", step_line(out, "fit")), "a step not started has no elapsed time"
    assert ("FAILED; its stderr: " + stderr_path(cluster, "fit") in out) == (fit == "FAILED")
    if cluster_state == "TERMINATED_WITH_ERRORS":
        assert "Cluster failed" in out


def test_failed_step_prints_its_stderr_location_and_whether_it_is_there(
    deployed, session, s3, capsys
) -> None:
    cluster = deployed()
    cluster.set_cluster("TERMINATED_WITH_ERRORS", reason="Step failure")
    cluster.set_step("fit", "FAILED", started_ago=100, ran_for=40)
    cluster.set_step("transform", "CANCELLED")

    assert main(["status"], session=session) == 1
    out = capsys.readouterr().out
    where = stderr_path(cluster, "fit")
    assert f"Step fit FAILED; its stderr: {where} (not in S3 yet" in out
    assert "Cluster failed: Step failure\n" in out
    assert "Step transform CANCELLED" in out

    s3.put_object(Bucket=BUCKET, Key=where.split("/", 3)[3], Body=b"\x1f\x8b gzip")
    assert main(["status"], session=session) == 1
    out = capsys.readouterr().out
    assert f"Step fit FAILED; its stderr: {where}\n" in out


def test_failed_fit_with_the_cluster_left_waiting(deployed, session, capsys, waiter_clock) -> None:
    """The stack's ActionOnFailure is CANCEL_AND_WAIT: a failed fit cancels transform and the cluster may sit
    in WAITING until its idle timeout ends it. The run has failed: `status` exits 1 with fit's stderr path,
    while WAITING and once terminated; `--follow` returns at once instead of waiting for the termination."""
    cluster = deployed()
    steps = session.client("emr").list_steps(ClusterId=cluster.id)["Steps"]
    assert {s["ActionOnFailure"] for s in steps} == {"CANCEL_AND_WAIT"}
    cluster.set_cluster("WAITING")
    cluster.set_step("fit", "FAILED", started_ago=100, ran_for=40)
    cluster.set_step("transform", "CANCELLED")
    where = stderr_path(cluster, "fit")

    assert main(["status"], session=session) == 1
    out = capsys.readouterr().out
    assert f"{cluster.id}  WAITING " in out
    assert f"Step fit FAILED; its stderr: {where}" in out
    assert "Step transform CANCELLED" in out
    assert "Cluster failed" not in out

    delays = waiter_clock(
        [lambda: cluster.set_cluster("TERMINATING"), lambda: cluster.set_cluster("TERMINATED")]
    )
    assert main(["status", "--follow"], session=session) == 1
    assert delays == [], "returned on the failed step, without waiting for the cluster"
    out = capsys.readouterr().out
    assert f"{cluster.id}  WAITING " in out
    assert f"Step fit FAILED; its stderr: {where}" in out

    cluster.set_cluster("TERMINATED", reason="Idle timeout")
    assert main(["status"], session=session) == 1
    out = capsys.readouterr().out
    assert f"{cluster.id}  TERMINATED " in out
    assert f"Step fit FAILED; its stderr: {where}" in out


def test_follow_waits_with_the_waiters_until_the_steps_end(deployed, session, capsys, waiter_clock) -> None:
    cluster = deployed()
    cluster.set_cluster("STARTING")
    cluster.set_step("fit", "PENDING")
    emr_calls: list[str] = []
    session.events.register("before-call.emr.*", lambda model, **_: emr_calls.append(model.name))
    delays = waiter_clock(
        [
            lambda: (cluster.set_cluster("RUNNING"), cluster.set_step("fit", "RUNNING", started_ago=30)),
            lambda: cluster.set_step("fit", "RUNNING"),
            lambda: (
                cluster.set_step("fit", "COMPLETED", started_ago=700, ran_for=650),
                cluster.set_step("transform", "RUNNING", started_ago=50),
            ),
            lambda: cluster.set_step("transform", "COMPLETED", started_ago=200, ran_for=190),
            lambda: cluster.set_cluster("TERMINATING"),
            lambda: cluster.set_cluster("TERMINATED"),
        ]
    )

    assert main(["status", "--follow", "--poll", "20"], session=session) == 0

    assert delays == [20] * 6, "every scripted change was observed, one poll interval each"
    # fit: PENDING, RUNNING, RUNNING, COMPLETED; transform: RUNNING, COMPLETED; cluster: 2 changes.
    assert emr_calls.count("DescribeStep") == 6
    out = capsys.readouterr().out
    assert re.search(r"COMPLETED\s+0:10:50", step_line(out, "fit"))
    assert re.search(r"COMPLETED\s+0:03:10", step_line(out, "transform"))
    assert f"{cluster.id}  TERMINATED " in out


def test_follow_exits_1_with_the_stderr_path_when_a_step_fails(
    deployed, session, capsys, waiter_clock
) -> None:
    cluster = deployed()
    cluster.set_cluster("RUNNING")
    delays = waiter_clock(
        [
            lambda: cluster.set_step("fit", "RUNNING"),
            lambda: (
                cluster.set_step("fit", "FAILED", started_ago=100, ran_for=99),
                cluster.set_step("transform", "CANCELLED"),
                cluster.set_cluster("TERMINATING"),
            ),
        ]
    )

    assert main(["status", "--follow"], session=session) == 1

    assert delays == [30, 30], "returned as soon as the waiter saw the failure"
    out = capsys.readouterr().out
    assert f"Step fit FAILED; its stderr: {stderr_path(cluster, 'fit')}" in out
    assert "Step transform CANCELLED" in out


def test_follow_returns_at_once_when_everything_has_ended(deployed, session, capsys, waiter_clock) -> None:
    cluster = deployed()
    cluster.set_step("fit", "COMPLETED", started_ago=100, ran_for=10)
    cluster.set_step("transform", "COMPLETED", started_ago=50, ran_for=10)
    cluster.set_cluster("TERMINATED")
    delays = waiter_clock([])

    assert main(["status", "--follow"], session=session) == 0
    assert delays == []
    assert f"{cluster.id}  TERMINATED " in capsys.readouterr().out


def test_follow_does_not_wait_for_a_cluster_that_stays_up(deployed, session, capsys, waiter_clock) -> None:
    cluster = deployed(keep_alive=True)
    cluster.set_cluster("RUNNING")
    delays = waiter_clock(
        [
            lambda: cluster.set_step("fit", "COMPLETED", started_ago=10, ran_for=5),
            lambda: (
                cluster.set_step("transform", "COMPLETED", started_ago=5, ran_for=1),
                cluster.set_cluster("WAITING"),
            ),
        ]
    )

    assert main(["status", "--follow"], session=session) == 0
    assert delays == [30, 30]
    assert "stays up after its steps and bills until `make destroy`" in capsys.readouterr().err


def test_follow_gives_up_after_the_timeout(deployed, session, capsys, waiter_clock) -> None:
    cluster = deployed()
    cluster.set_cluster("RUNNING")
    delays = waiter_clock([])

    assert main(["status", "--follow", "--poll", "30", "--timeout", "90"], session=session) == 3

    assert sum(delays) <= 120, "bounded by --timeout (plus one poll)"
    assert "gave up waiting for step fit after 90s" in capsys.readouterr().err
    assert cluster.step("fit").state == "RUNNING"


def test_make_status_and_follow_report_a_failed_step(deployed, aws_env) -> None:
    cluster = deployed()
    cluster.set_cluster("TERMINATED_WITH_ERRORS")
    cluster.set_step("fit", "FAILED", started_ago=100, ran_for=40)
    cluster.set_step("transform", "CANCELLED")

    direct = subprocess.run(
        [sys.executable, "-m", "ops", "status"], cwd=REPO, env=aws_env, capture_output=True, text=True
    )
    assert direct.returncode == 1, direct.stderr
    assert stderr_path(cluster, "fit") in direct.stdout

    for target in ("status", "follow"):
        made = subprocess.run(["make", "-s", target], cwd=REPO, env=aws_env, capture_output=True, text=True)
        assert made.returncode != 0
        assert stderr_path(cluster, "fit") in made.stdout


def test_status_without_a_deployed_stack_is_a_one_line_error(session, capsys) -> None:
    assert main(["status"], session=session) == 3
    captured = capsys.readouterr()
    assert (
        captured.err
        == "error: stack FruitsPipeline is not deployed in eu-west-3 (deploy it with `make deploy`)\n"
    )
    assert captured.out == ""


def test_status_with_a_cluster_emr_does_not_know(deploy_stack, session, capsys) -> None:
    deploy_stack(STACK, pipeline_outputs("j-NOTACLUSTER0"))
    assert main(["status"], session=session) == 3
    err = capsys.readouterr().err
    assert "EMR cluster j-NOTACLUSTER0 (output ClusterId of stack FruitsPipeline) is not known" in err
