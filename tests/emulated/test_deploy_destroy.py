"""The user's deploy, runs and destroy, for real, against moto's server on loopback.

`cdk bootstrap`, then `make deploy`, `make run`, `make status`, `make runs` and `make destroy` exactly as a
user runs them (extra CDK arguments through CDK_ARGS), checked through the AWS APIs: stacks, outputs, the
deployed template's step and bootstrap URIs against the published assets, the clusters `make run` and the
schedule start against the deployed one, the operator CLI against the deployed bucket, and data retention.
Run alone with `pytest -m emulated`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.emulated

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # what moto's STS GetCallerIdentity answers
REGION = "eu-west-3"
ASSET_BUCKET = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"
READY_TIMEOUT_S = 30
# No internet here: the shared MobileNetV2 file is what weights=imagenet ships (see stacks/weights.py).
WEIGHTS = REPO.parent / "shared" / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_no_top_rebuilt.h5"
COMMAND_TIMEOUT_S = 600


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Bounded readiness poll: an HTTP request every 0.1 s for at most READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto server exited with {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    pytest.fail(f"moto server not answering on {url} after {READY_TIMEOUT_S}s:\n{log.read_text()[-2000:]}")


@dataclass
class Emulator:
    env: dict[str, str]
    workdir: Path
    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            cmd, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        assert done.returncode == 0 or not check, (
            f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done

    def make(
        self, target: str, *context: str, check: bool = True, **variables: str
    ) -> subprocess.CompletedProcess[str]:
        # Synth into our own folder: other cdk commands in this checkout lock cdk.out.
        cdk_args = " ".join(
            [f"-c weightsFile={WEIGHTS}", *context, "--no-notices", f"--output {self.workdir / 'cdk.out'}"]
        )
        assignments = [f"{k}={v}" for k, v in variables.items()]
        return self.run(
            "make", "--no-print-directory", target, f"CDK_ARGS={cdk_args}", *assignments, check=check
        )

    def stacks(self) -> dict[str, str]:
        listed = self.client("cloudformation").describe_stacks()["Stacks"]
        return {s["StackName"]: s["StackStatus"] for s in listed}

    def outputs(self, stack: str) -> dict[str, str]:
        described = self.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}

    def resources(self, stack: str, resource_type: str) -> dict[str, str]:
        listed = self.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]
        return {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in listed
            if r["ResourceType"] == resource_type
        }

    def bucket_exists(self, name: str) -> bool:
        try:
            self.client("s3").head_bucket(Bucket=name)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in {"404", "NoSuchBucket"}, exc
            return False
        return True


@pytest.fixture(scope="module")
def emulator(module_tmp: Path) -> Iterator[Emulator]:
    """moto_server (with the gaps the CDK CLI hits filled) on a free loopback port; always stopped."""
    workdir = module_tmp
    port = free_loopback_port()
    log = workdir / "moto_server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        # moto reads a change set's TemplateURL path-style only when the host says localhost.
        AWS_ENDPOINT_URL=f"http://localhost:{port}",
        AWS_CONFIG_FILE=str(workdir / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.emulated.patched_moto_server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/moto-api/", server, log)
            yield Emulator(env=env, workdir=workdir, endpoint=f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


@pytest.fixture(scope="module")
def bootstrapped(emulator: Emulator) -> Emulator:
    emulator.run(
        "npx", "--no-install", "cdk", "bootstrap", "--no-notices", "-c", f"weightsFile={WEIGHTS}",
        "--output", str(emulator.workdir / "cdk.out"), f"aws://{ACCOUNT}/{REGION}",
    )  # fmt: skip
    assert emulator.stacks() == {"CDKToolkit": "CREATE_COMPLETE"}
    assert emulator.bucket_exists(ASSET_BUCKET)
    return emulator


def resolve(value: Any, emulator: Emulator) -> str:
    """A template value as CloudFormation resolves it (the intrinsics the step arguments use)."""
    if isinstance(value, str):
        return value
    (fn, arg), *rest = value.items()
    assert not rest, value
    if fn == "Fn::Sub" and isinstance(arg, str):
        pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::URLSuffix": "amazonaws.com"}
        return re.sub(r"\$\{([^}]+)\}", lambda m: pseudo[m.group(1)], arg)
    if fn == "Fn::Join":
        separator, parts = arg
        return separator.join(resolve(p, emulator) for p in parts)
    if fn == "Fn::GetStackOutput":
        return emulator.outputs(arg["StackName"])[arg["OutputName"]]
    if fn == "Ref" and arg in {"AWS::Region", "AWS::AccountId"}:
        return {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT}[arg]
    raise AssertionError(f"unexpected intrinsic in a deployed value: {value}")


def asset(uri: str, emulator: Emulator) -> bytes:
    """The object an s3:// URI of the deployed template points at, which must be a published asset."""
    assert uri.startswith(f"s3://{ASSET_BUCKET}/"), uri
    key = uri.removeprefix(f"s3://{ASSET_BUCKET}/")
    return emulator.client("s3").get_object(Bucket=ASSET_BUCKET, Key=key)["Body"].read()


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def small_dataset(root: Path) -> Path:
    for split in ("Training", "Test"):
        for cls in ("Banana", "Kiwi"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                (root / split / cls / f"{i}_100.jpg").write_bytes(b"\xff\xd8\xff" + bytes([i]) * 700)
    return root


@pytest.mark.parametrize(
    ("egress", "label"), [("none", "emr-7.14.0"), ("nat", "emr-7.14.0"), ("none", "emr-spark-8.1.0")]
)
def test_deploy_then_destroy_keeps_the_retained_data_bucket(
    bootstrapped: Emulator, egress: str, label: str
) -> None:
    emu = bootstrapped
    # none: the defaults; nat: also a Spot task fleet; emr-spark-8.1.0: the LTS line's groups and roles
    context = () if egress == "none" else (f"-c egress={egress}", "-c taskCapacity=2")
    if label != "emr-7.14.0":
        context += (f"-c releaseLabel={label}",)
    emu.make("deploy", *context)

    assert emu.stacks() == {
        "CDKToolkit": "CREATE_COMPLETE",
        "FruitsData": "CREATE_COMPLETE",
        "FruitsPipeline": "CREATE_COMPLETE",
    }
    outputs = emu.outputs("FruitsPipeline")
    bucket, run_id = outputs["BucketName"], outputs["RunId"]
    assert list(emu.resources("FruitsData", "AWS::S3::Bucket").values()).count(bucket) == 1
    (cluster_id,) = emu.resources("FruitsPipeline", "AWS::EMR::Cluster").values()
    assert outputs["ClusterId"] == cluster_id
    assert outputs["RunOutputUri"] == f"s3://{bucket}/runs/{run_id}/"
    assert outputs["LogUri"] == f"s3://{bucket}/emr-logs/"
    assert outputs["ClusterConsoleUrl"].endswith(f"region={REGION}#/clusterDetails/{cluster_id}")

    # The deployed template: steps and bootstrap action point at the published assets and the outputs.
    template = emu.client("cloudformation").get_template(StackName="FruitsPipeline")["TemplateBody"]
    assert emu.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["ReleaseLabel"] == label
    template = json.loads(template) if isinstance(template, str) else template
    (cluster,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::EMR::Cluster"]
    assert resolve(cluster["LogUri"], emu) == outputs["LogUri"]
    steps = {s["Name"]: [resolve(a, emu) for a in s["HadoopJarStep"]["Args"]] for s in cluster["Steps"]}
    assert list(steps) == ["fit", "transform"]
    for name, args in steps.items():
        code = [a for a in args if a.startswith("s3://cdk-")]
        package, entry = option(args, "--py-files"), args[args.index(name) - 1]
        assert code == [package, entry, option(args, "--weights")], args
        names = zipfile.ZipFile(io.BytesIO(asset(package, emu))).namelist()
        assert {"spark_job/__init__.py", "spark_job/driver/job.py"} <= set(names)
        assert asset(entry, emu) == (REPO / "spark_job" / "entrypoint.py").read_bytes()
    assert option(steps["fit"], "--input") == f"s3://{bucket}/data/Training"
    assert option(steps["fit"], "--output") == f"{outputs['RunOutputUri']}fit"
    assert option(steps["transform"], "--input") == f"s3://{bucket}/data/Test"
    assert option(steps["transform"], "--model") == f"{outputs['RunOutputUri']}fit/model"
    assert option(steps["transform"], "--output") == f"{outputs['RunOutputUri']}transform"
    (action,) = cluster["BootstrapActions"]
    script = action["ScriptBootstrapAction"]
    assert (
        asset(resolve(script["Path"], emu), emu)
        == (REPO / "bootstrap" / "install_python_deps.sh").read_bytes()
    )
    lock, wheelhouse = [resolve(a, emu) for a in script["Args"]]
    assert asset(lock, emu) == (REPO / "spark_job" / "requirements.x86_64.lock").read_bytes()
    with zipfile.ZipFile(io.BytesIO(asset(wheelhouse, emu))) as archive:  # the folder, zipped by cdk deploy
        shipped = set(archive.namelist())
        manifest = json.loads(archive.read("wheelhouse.json"))
    assert shipped == {"wheelhouse.json", *manifest["wheels"]}
    assert manifest["lockSha256"] == hashlib.sha256(asset(lock, emu)).hexdigest()
    for args in steps.values():  # the weights: an asset too, the file given as weightsFile
        assert asset(option(args, "--weights"), emu) == WEIGHTS.read_bytes()

    # The fleets as deployed (moto accepts InstanceFleets but models neither fleets nor groups of a
    # CloudFormation cluster: the template is what can be checked), over subnets in two AZs.
    instances = cluster["Instances"]
    assert instances["MasterInstanceFleet"]["TargetOnDemandCapacity"] == 1
    assert instances["CoreInstanceFleet"]["TargetOnDemandCapacity"] == 2
    if egress == "none":
        assert "TaskInstanceFleets" not in instances
    else:
        (task,) = instances["TaskInstanceFleets"]
        assert task["TargetSpotCapacity"] == 2
        assert task["LaunchSpecifications"]["SpotSpecification"]["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    ec2 = emu.client("ec2")
    physical = emu.resources("FruitsPipeline", "AWS::EC2::Subnet")
    subnet_ids = [physical[s["Ref"]] for s in instances["Ec2SubnetIds"]]
    zones = {s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
    assert len(subnet_ids) == len(zones) == 2, zones

    # The network of the chosen egress, as deployed.
    (vpc_id,) = emu.resources("FruitsPipeline", "AWS::EC2::VPC").values()
    gateways = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"]
    live = [g for g in gateways if g["State"] not in {"deleted", "deleting"}]
    internet = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
    services = sorted(e["ServiceName"].rsplit(".", 1)[1] for e in endpoints)
    if egress == "none":
        assert live == [] and internet["InternetGateways"] == []
        assert services == ["kms", "s3"]
        (kms,) = [e for e in endpoints if e["ServiceName"].endswith(".kms")]
        assert sorted(kms["SubnetIds"]) == sorted(subnet_ids)  # an interface in each AZ
    else:
        assert len(live) == 1 and len(internet["InternetGateways"]) == 1
        assert services == ["s3"]
    # The service-access group of the line, as deployed: 9443 from the primary group (7.x), or HTTPS from
    # the VPC for EMR 8's service endpoint.
    groups = emu.resources("FruitsPipeline", "AWS::EC2::SecurityGroup")
    (service_access,) = [g for k, g in groups.items() if k.startswith("SecurityGroupsServiceAccess")]
    (described,) = ec2.describe_security_groups(GroupIds=[service_access])["SecurityGroups"]
    rules = {
        (p.get("FromPort"), tuple(r["CidrIp"] for r in p.get("IpRanges", [])))
        for p in described["IpPermissions"]
    }
    assert rules == ({(443, ("10.42.0.0/16",))} if label.startswith("emr-spark-8.") else {(9443, ())})

    # The operator CLI finds the deployed bucket through the stack outputs.
    upload = emu.make("upload", DIR=str(small_dataset(emu.workdir / f"fruits-{egress}-{label}")))
    assert "uploaded 8 files" in upload.stdout
    # The deploy's run, by its cluster (the emulator runs no step: no folder under runs/, no manifest).
    runs = emu.make("runs")
    assert re.search(rf"^{run_id}\s+no manifest\s", runs.stdout, re.MULTILINE), runs.stdout

    emu.make("destroy", *context)

    assert emu.stacks() == {"CDKToolkit": "CREATE_COMPLETE"}
    assert emu.bucket_exists(bucket), "retainData=true (the default) keeps the data bucket"
    kept = emu.client("s3").list_objects_v2(Bucket=bucket, Prefix="data/")["KeyCount"]
    assert kept == 8
    assert vpc_id not in {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}, "the VPC went with the stack"


def deployed_template(emu: Emulator, stack: str) -> dict[str, Any]:
    body = emu.client("cloudformation").get_template(StackName=stack)["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else body


def test_flip_a_retained_deployment_then_destroy_deletes_the_buckets(bootstrapped: Emulator) -> None:
    """The README's recipe ("What remains after `make destroy`"), on a deployment made with the default
    retainData=true and holding data: `cdk deploy FruitsData -c retainData=false`, then
    `make destroy CDK_ARGS="-c retainData=false"`."""
    emu = bootstrapped
    emu.make("deploy")
    bucket = emu.outputs("FruitsPipeline")["BucketName"]
    buckets = set(emu.resources("FruitsData", "AWS::S3::Bucket").values())
    (logs_bucket,) = buckets - {bucket}
    s3 = emu.client("s3")
    keys = ["data/Training/Kiwi/0_100.jpg", "data/Test/Kiwi/1_100.jpg", "runs/run-x/fit/manifest.json"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8\xff" + key.encode())
    template = deployed_template(emu, "FruitsData")
    policies = {
        r.get("DeletionPolicy") for r in template["Resources"].values() if r["Type"] == "AWS::S3::Bucket"
    }
    assert policies == {"Retain"}

    # The flip: the same buckets (no replacement) now deleted with the stack, after being emptied.
    emu.run(
        "npx", "--no-install", "cdk", "deploy", "FruitsData", "-c", "retainData=false",
        "-c", f"weightsFile={WEIGHTS}", "--require-approval", "never", "--no-notices",
        "--output", str(emu.workdir / "cdk.out"),
    )  # fmt: skip
    assert emu.stacks()["FruitsData"] == "UPDATE_COMPLETE"
    assert set(emu.resources("FruitsData", "AWS::S3::Bucket").values()) == buckets
    template = deployed_template(emu, "FruitsData")
    bucket_ids = {lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::S3::Bucket"}
    assert {template["Resources"][lid].get("DeletionPolicy") for lid in bucket_ids} == {"Delete"}
    emptied = {
        r["Properties"]["BucketName"]["Ref"]
        for r in template["Resources"].values()
        if r["Type"] == "Custom::S3AutoDeleteObjects"
    }
    assert emptied == bucket_ids, "each bucket is emptied by CDK's auto-delete custom resource"
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == sorted(keys)

    # The data bucket is versioned: an overwrite and a delete leave a previous version and a delete marker,
    # the lifecycle expires noncurrent versions, and the bucket carries the tag CDK's auto-delete handler
    # requires before it deletes every version and delete marker (ListObjectVersions, then DeleteObjects
    # with version ids), so retainData=false still empties it.
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert {r["ID"]: r.get("NoncurrentVersionExpiration") for r in rules}["ExpireNoncurrentVersions"] == {
        "NoncurrentDays": 30
    }
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags.get("aws-cdk:auto-delete-objects") == "true"
    s3.put_object(Bucket=bucket, Key=keys[0], Body=b"\xff\xd8\xff rewritten")
    s3.delete_object(Bucket=bucket, Key=keys[1])
    versions = s3.list_object_versions(Bucket=bucket)
    assert len(versions["Versions"]) == len(keys) + 1 and len(versions["DeleteMarkers"]) == 1
    old = [v for v in versions["Versions"] if v["Key"] == keys[0] and not v["IsLatest"]]
    recovered = s3.get_object(Bucket=bucket, Key=keys[0], VersionId=old[0]["VersionId"])["Body"].read()
    assert recovered == b"\xff\xd8\xff" + keys[0].encode(), "the overwritten photo is recoverable"
    keys = [k for k in keys if k != keys[1]]

    emu.make("destroy", "-c retainData=false")

    assert emu.stacks() == {"CDKToolkit": "CREATE_COMPLETE"}
    # The access-log bucket (empty: moto writes no access logs) was Retain before the flip: gone now.
    assert not emu.bucket_exists(logs_bucket), "retainData=false: destroy deletes the buckets"
    # The data bucket holds objects. On AWS the Custom::S3AutoDeleteObjects resource (asserted above) runs
    # its Lambda on delete, which empties the bucket before CloudFormation deletes it. moto marks that
    # custom resource done without running the Lambda, and its S3 skips deleting a non-empty bucket without
    # an error (the stack still reaches DELETE_COMPLETE). So here the bucket is left, with the objects: all
    # this emulator can prove is that destroy went through with the bucket's DeletionPolicy Delete.
    assert emu.bucket_exists(bucket), "moto now deletes non-empty buckets or runs the Lambda: tighten this"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == len(keys)
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == len(keys) + 2


# What EventBridge Scheduler puts for <aws.scheduler.execution-id> (the example id of
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html).
EXECUTION_ID = "d32c5kddcf5bb8c3"


def started_run(made: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """(run id, cluster id) from `make run`'s output."""
    run = re.search(r"^Run      (\S+) -> s3://", made.stdout, re.MULTILINE)
    cluster = re.search(r"^Cluster  (j-\w+)$", made.stdout, re.MULTILINE)
    assert run and cluster, made.stdout
    return run.group(1), cluster.group(1)


def test_make_run_twice_and_the_schedule_start_the_deployed_cluster_then_destroy_leaves_nothing(
    bootstrapped: Emulator,
) -> None:
    """`make deploy` with a schedule, `make run` twice, one scheduled invocation (its universal target's
    request, as Scheduler sends it): three clusters with the deployed steps, each under its own run id,
    which `make status` and `make runs` show; `make destroy` refuses while they are up, then leaves no stack
    and no schedule."""
    emu = bootstrapped
    schedule = "-c 'schedule=rate(1 day)'"
    emu.make("deploy", schedule)
    outputs = emu.outputs("FruitsPipeline")
    bucket, deploy_run = outputs["BucketName"], outputs["RunId"]
    scheduler, emr = emu.client("scheduler"), emu.client("emr")
    assert outputs["RunSchedule"] == "FruitsPipeline-runs"
    deployed_schedule = scheduler.get_schedule(Name=outputs["RunSchedule"])
    assert deployed_schedule["ScheduleExpression"] == "rate(1 day)"
    assert deployed_schedule["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:emr:runJobFlow"
    stack_before = emu.client("cloudformation").describe_stacks(StackName="FruitsPipeline")["Stacks"][0]

    # The cluster as deployed (template values resolved as CloudFormation did), for the deploy's run id.
    template = deployed_template(emu, "FruitsPipeline")
    (cluster,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::EMR::Cluster"]
    deployed_steps = {
        s["Name"]: [resolve(a, emu) for a in s["HadoopJarStep"]["Args"]] for s in cluster["Steps"]
    }
    (action,) = cluster["BootstrapActions"]
    deployed_bootstrap = [resolve(a, emu) for a in action["ScriptBootstrapAction"]["Args"]]

    first, second = started_run(emu.make("run")), started_run(emu.make("run"))
    # The schedule fires: Scheduler fills in the execution id and calls RunJobFlow with its Input.
    scheduled_request = json.loads(
        deployed_schedule["Target"]["Input"].replace("<aws.scheduler.execution-id>", EXECUTION_ID)
    )
    scheduled = (f"scheduled-{EXECUTION_ID}", emr.run_job_flow(**scheduled_request)["JobFlowId"])

    runs = [first, second, scheduled]
    assert len({run for run, _ in runs} | {deploy_run}) == 4, "a new run id each"
    assert len({cluster_id for _, cluster_id in runs}) == 3
    for run, cluster_id in runs:
        described = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        assert described["Name"] == f"fruits-pipeline-{run}"
        tags = {t["Key"]: t["Value"] for t in described["Tags"]}
        assert tags["fruits-pipeline:run-id"] == run
        assert tags["fruits-pipeline:stack"] == "FruitsPipeline"
        assert tags["for-use-with-amazon-emr-managed-policies"] == "true"
        assert described["LogUri"] == f"s3://{bucket}/emr-logs/"
        assert described["ReleaseLabel"] == cluster["ReleaseLabel"]
        assert described["SecurityConfiguration"] == resolve_ref(cluster["SecurityConfiguration"], emu)
        steps = emr.list_steps(ClusterId=cluster_id)["Steps"]
        started_steps = {s["Name"]: s["Config"]["Args"] for s in reversed(steps)}
        expected = {name: [a.replace(deploy_run, run) for a in args] for name, args in deployed_steps.items()}
        assert started_steps == expected, "the synthesized steps, writing to runs/<its run id>/"
        assert option(started_steps["fit"], "--output") == f"s3://{bucket}/runs/{run}/fit"
        (bootstrap,) = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
        assert bootstrap["Args"] == deployed_bootstrap
    stack_after = emu.client("cloudformation").describe_stacks(StackName="FruitsPipeline")["Stacks"][0]
    assert stack_after == stack_before, "no stack changed"

    status = emu.make("status")  # the newest run: the scheduled one; the others are still up
    assert f"Run      {scheduled[0]} -> s3://{bucket}/runs/{scheduled[0]}/" in status.stdout
    assert f"Cluster  {scheduled[1]}  " in status.stdout
    for run, cluster_id in (first, second):
        assert f"Also up: run {run}  {cluster_id}  " in status.stdout
        named = emu.make("status", RUN=run)
        assert f"Run      {run} -> " in named.stdout and f"Cluster  {cluster_id}  " in named.stdout
    listed = emu.make("runs").stdout.splitlines()
    assert [line.split()[0] for line in listed[1:]][-3:] == [first[0], second[0], scheduled[0]], listed

    refused = emu.make("destroy", schedule, check=False)
    assert refused.returncode != 0
    assert "not destroying FruitsPipeline: 3 run(s) started outside CloudFormation" in refused.stderr
    assert "FruitsPipeline" in emu.stacks()
    emr.terminate_job_flows(JobFlowIds=[cluster_id for _, cluster_id in runs])  # or wait for them to end

    emu.make("destroy", schedule)

    assert emu.stacks() == {"CDKToolkit": "CREATE_COMPLETE"}
    assert scheduler.list_schedules()["Schedules"] == [], "the schedule went with the stack"
    parameters = emu.client("ssm").describe_parameters()["Parameters"]
    assert "/FruitsPipeline/run-request" not in {p["Name"] for p in parameters}


def resolve_ref(value: Any, emulator: Emulator) -> str:
    """Ref of a resource of the pipeline stack: its physical id."""
    return emulator.resources("FruitsPipeline", "AWS::EMR::SecurityConfiguration")[value["Ref"]]
