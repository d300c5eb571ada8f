"""`run`: a run started from the published RunJobFlow request, then found by `status`, `runs`, `results`; and
`before-destroy`, which keeps `make destroy` from deleting the stack under such a run. Against moto's EMR."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from ops.cli import main
from stacks.run_contract import RUN_ID_PLACEHOLDER, RUN_ID_TAG, STACK_TAG
from tests.ops.support import BUCKET, REGION, REPO, EmrCluster, pipeline_outputs

STACK = "FruitsPipeline"
PARAMETER = "/FruitsPipeline/run-request"
RUN_URI = f"s3://{BUCKET}/runs/{RUN_ID_PLACEHOLDER}"


def request(stack: str = STACK) -> dict[str, Any]:
    """A request as the stack publishes it (stacks/cluster.py renders the real one; tests/infra checks it)."""
    fleet_types = [
        {"InstanceType": t, "WeightedCapacity": 1} for t in ("m5.xlarge", "m6i.xlarge", "m5a.xlarge")
    ]
    on_demand = {"OnDemandSpecification": {"AllocationStrategy": "lowest-price"}}
    return {
        "Name": f"fruits-pipeline-{RUN_ID_PLACEHOLDER}",
        "LogUri": f"s3://{BUCKET}/emr-logs/",
        "ReleaseLabel": "emr-7.14.0",
        "Instances": {
            "InstanceFleets": [
                {
                    "Name": "Primary",
                    "InstanceFleetType": "MASTER",
                    "TargetOnDemandCapacity": 1,
                    "InstanceTypeConfigs": fleet_types,
                    "LaunchSpecifications": on_demand,
                },
                {
                    "Name": "Core",
                    "InstanceFleetType": "CORE",
                    "TargetOnDemandCapacity": 2,
                    "InstanceTypeConfigs": fleet_types,
                    "LaunchSpecifications": on_demand,
                },
            ],
            "Ec2SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            "KeepJobFlowAliveWhenNoSteps": False,
            "TerminationProtected": False,
        },
        "Steps": [
            {
                "Name": mode,
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "HadoopJarStep": {
                    "Jar": "command-runner.jar",
                    "Args": [
                        "spark-submit",
                        "s3://assets/entrypoint.py",
                        mode,
                        "--output",
                        f"{RUN_URI}/{mode}",
                    ],
                },
            }
            for mode in ("fit", "transform")
        ],
        "Applications": [{"Name": "Spark"}],
        "VisibleToAllUsers": True,
        "JobFlowRole": "FruitsPipeline-AccessEc2Role",
        "ServiceRole": "arn:aws:iam::123456789012:role/FruitsPipeline-AccessServiceRole",
        "AutoTerminationPolicy": {"IdleTimeout": 900},
        "Tags": [
            {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"},
            {"Key": RUN_ID_TAG, "Value": RUN_ID_PLACEHOLDER},
            {"Key": STACK_TAG, "Value": stack},
        ],
    }


@pytest.fixture
def deployed(
    session: Any, bucket: str, deploy_stack: Callable[..., None], emr_cluster: Callable[..., EmrCluster]
) -> EmrCluster:
    """The pipeline stack as deployed: its own cluster (the deploy's run) and the published request."""
    own = emr_cluster()
    session.client("ssm").put_parameter(
        Name=PARAMETER, Value=json.dumps(request()), Type="String", Tier="Advanced"
    )
    deploy_stack(STACK, {**pipeline_outputs(own.id), "RunRequestParameter": PARAMETER})
    return own


def started(out: str) -> tuple[str, str]:
    """(run id, cluster id) from what `run` prints."""
    run = re.search(r"^Run      (\S+) -> s3://", out, re.MULTILINE)
    cluster = re.search(r"^Cluster  (j-\w+)$", out, re.MULTILINE)
    assert run and cluster, out
    return run.group(1), cluster.group(1)


def describe(session: Any, cluster_id: str) -> dict[str, Any]:
    return session.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]


def test_run_starts_the_published_cluster_under_a_new_run_id_without_touching_the_stack(
    deployed: EmrCluster, session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfn = session.client("cloudformation")
    stack_before = cfn.describe_stacks(StackName=STACK)["Stacks"][0]

    assert main(["run"], session=session) == 0
    first_run, first_cluster = started(capsys.readouterr().out)
    assert main(["run"], session=session) == 0
    out = capsys.readouterr().out
    second_run, second_cluster = started(out)

    assert first_run != second_run and first_cluster != second_cluster
    for run in (first_run, second_run):
        assert re.fullmatch(r"manual-\d{8}-\d{6}-[0-9a-f]{4}", run)
    assert f"Run      {second_run} -> s3://{BUCKET}/runs/{second_run}/" in out
    assert f"make follow RUN={second_run}" in out
    cluster = describe(session, second_cluster)
    assert cluster["Name"] == f"fruits-pipeline-{second_run}"
    assert {t["Key"]: t["Value"] for t in cluster["Tags"]}[RUN_ID_TAG] == second_run
    steps = session.client("emr").list_steps(ClusterId=second_cluster)["Steps"]
    args = {s["Name"]: s["Config"]["Args"] for s in steps}
    assert args["fit"][-1] == f"s3://{BUCKET}/runs/{second_run}/fit"
    assert args["transform"][-1] == f"s3://{BUCKET}/runs/{second_run}/transform"
    assert RUN_ID_PLACEHOLDER not in json.dumps([cluster, steps], default=str)
    # No stack changed: same status, same outputs, no update.
    stack_after = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack_after["StackStatus"] == stack_before["StackStatus"] == "CREATE_COMPLETE"
    assert stack_after["Outputs"] == stack_before["Outputs"]
    assert "LastUpdatedTime" not in stack_after


def clusters(session: Any) -> int:
    return len(session.client("emr").list_clusters()["Clusters"])


def test_run_with_a_chosen_id_and_the_ids_it_refuses(
    deployed: EmrCluster, session: Any, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "2026-12-07a"], session=session) == 0
    assert started(capsys.readouterr().out)[0] == "2026-12-07a"
    before = clusters(session)

    assert main(["run", "2026-12-07a"], session=session) == 3  # its cluster exists
    assert "run 2026-12-07a already has cluster j-" in capsys.readouterr().err
    s3.put_object(Bucket=BUCKET, Key="runs/2026-11-30z/fit/manifest.json", Body=b"{}")
    assert (
        main(["run", "2026-11-30z"], session=session) == 3
    )  # its outputs exist (a run older than EMR lists)
    assert (
        f"run 2026-11-30z already has outputs under s3://{BUCKET}/runs/2026-11-30z/"
        in capsys.readouterr().err
    )
    assert main(["run", "bad id!"], session=session) == 3
    assert "invalid run id 'bad id!': 1 to 63 characters of A-Z a-z 0-9 . _ -" in capsys.readouterr().err
    assert clusters(session) == before, "no cluster started for a refused id"


def test_run_on_a_stack_deployed_before_make_run_existed(
    session: Any, bucket: str, deploy_stack: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_stack(STACK, pipeline_outputs("j-OLDSTACK00000"))
    assert main(["run"], session=session) == 3
    assert capsys.readouterr().err == (
        "error: stack FruitsPipeline publishes no run request (no output RunRequestParameter): it was "
        "deployed before `make run` existed; deploy it once more (`make deploy`)\n"
    )
    assert clusters(session) == 0


def test_status_runs_and_results_follow_the_newest_run_or_the_one_named(
    deployed: EmrCluster, session: Any, s3: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another deployment's pipeline in the same account and region: never shown.
    other = request("OtherPipeline")
    session.client("emr").run_job_flow(
        **json.loads(json.dumps(other).replace(RUN_ID_PLACEHOLDER, "theirs-1"))
    )
    assert main(["run"], session=session) == 0
    first_run, first_cluster = started(capsys.readouterr().out)
    assert main(["run"], session=session) == 0
    second_run, second_cluster = started(capsys.readouterr().out)
    for cluster_id in (deployed.id, first_cluster, second_cluster):
        EmrCluster(cluster_id, {}).set_cluster("RUNNING")

    assert main(["status"], session=session) == 0  # the newest run, and the others still up
    out = capsys.readouterr().out
    assert f"Run      {second_run} -> s3://{BUCKET}/runs/{second_run}/" in out
    assert f"Cluster  {second_cluster}  RUNNING " in out
    assert f"Also up: run {first_run}  {first_cluster}  RUNNING" in out
    assert f"Also up: run 2026-11-21a  {deployed.id}  RUNNING" in out  # the deploy's
    assert "theirs-1" not in out

    assert main(["status", first_run], session=session) == 0
    out = capsys.readouterr().out
    assert f"Run      {first_run} -> " in out and f"Cluster  {first_cluster}  " in out
    assert "Also up" not in out

    EmrCluster(first_cluster, {}).set_cluster("TERMINATED")
    assert main(["runs"], session=session) == 0
    lines = capsys.readouterr().out.splitlines()
    # Oldest first: the deploy's run (its cluster up), then the two, neither with a folder under runs/ yet.
    assert [line.split()[:2] for line in lines[1:]] == [
        ["2026-11-21a", "running"],
        [first_run, "no"],  # "no manifest": its cluster ended, it wrote nothing
        [second_run, "running"],
    ]

    assert main(["status", "never-ran"], session=session) == 3
    err = capsys.readouterr().err
    assert f"no EMR cluster of run never-ran for stack {STACK} in {REGION}" in err
    assert f"newest runs: {second_run}, {first_run}" in err

    # results: RUN defaults to the newest run
    key = f"runs/{second_run}/fit/report/summary.md"
    s3.put_object(Bucket=BUCKET, Key=key, Body=f"# Fruits! fit - run {second_run}\n".encode())
    assert main(["results", "--dest", str(tmp_path / "r")], session=session) == 0
    assert (tmp_path / "r" / "fit" / "report" / "summary.md").is_file()
    assert f"Results of run {second_run} in " in capsys.readouterr().out


def test_before_destroy_refuses_while_a_run_outside_cloudformation_is_up(
    deployed: EmrCluster, session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.set_cluster("RUNNING")  # the stack's own cluster: CloudFormation's to terminate
    assert main(["before-destroy"], session=session) == 0
    assert main(["run"], session=session) == 0
    run, cluster = started(capsys.readouterr().out)
    EmrCluster(cluster, {}).set_cluster("RUNNING")

    assert main(["before-destroy"], session=session) == 3
    err = capsys.readouterr().err
    assert f"not destroying {STACK}: 1 run(s) started outside CloudFormation still use" in err
    assert f"run {run}: cluster {cluster} RUNNING" in err
    assert f"aws emr terminate-clusters --cluster-ids {cluster}" in err

    session.client("emr").terminate_job_flows(JobFlowIds=[cluster])
    assert main(["before-destroy"], session=session) == 0


def test_before_destroy_without_a_pipeline_stack(session: Any, bucket: str) -> None:
    assert main(["before-destroy"], session=session) == 0


def test_make_run_then_status_and_follow_of_that_run(deployed: EmrCluster, aws_env: dict[str, str]) -> None:
    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "-s", *args], cwd=REPO, env=aws_env, capture_output=True, text=True)

    made = make("run", "RUN=2026-12-07b")
    assert made.returncode == 0, made.stderr
    run, cluster_id = started(made.stdout)
    assert run == "2026-12-07b"
    cluster = EmrCluster(cluster_id, {})
    cluster.set_cluster("TERMINATED_WITH_ERRORS")
    cluster.set_step("fit", "FAILED", started_ago=100, ran_for=40)
    cluster.set_step("transform", "CANCELLED")
    for target in ("status", "follow"):
        made = make(target, f"RUN={run}")
        assert made.returncode != 0, "a failed step"
        assert f"Run      {run} -> " in made.stdout
        assert f"/emr-logs/{cluster_id}/steps/" in made.stdout
    made = make("status")  # the newest run: this one, not the deploy's
    assert f"Cluster  {cluster_id}  TERMINATED_WITH_ERRORS" in made.stdout
