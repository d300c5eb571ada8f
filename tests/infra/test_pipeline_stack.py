"""FruitsPipeline: cluster, steps, Spark settings, network, security groups, IAM, outputs, run id."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from spark_job.contract.names import STEP_ACTION_ON_FAILURE
from stacks import PROJECT_ROOT, packaging
from stacks.spark_settings import BASE_SPARK_DEFAULTS, PYSPARK_PYTHON, SPARK_ENV_EXPORTS
from tests.cfn_template import render
from tests.infra.conftest import TEST_CONTEXT, Synth, asset_source, build_app, only
from tests.infra.test_spark_sizing import M5_XLARGE_EXECUTORS
from tests.runtime_support import ensure_wheelhouse

EMR_TAG = {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}
ASSET = r"s3://cdk-hnb659fds-assets-\$\{AWS::AccountId\}-eu-west-3/[0-9a-f]{64}"
WEIGHTS_FILE = Path(TEST_CONTEXT["weightsFile"])
BUCKET = "${FruitsData.BucketName}"
X86_PRESET = ("m5.xlarge", "m6i.xlarge", "m5a.xlarge", "m6a.xlarge", "m7i.xlarge")
ON_DEMAND = {"OnDemandSpecification": {"AllocationStrategy": "lowest-price"}}


@pytest.fixture(scope="module")
def template(default_synth: Synth) -> Template:
    return default_synth.pipeline


@pytest.fixture(scope="module")
def cluster(template: Template) -> dict[str, Any]:
    return only(template, "AWS::EMR::Cluster")[1]["Properties"]


@pytest.fixture(scope="module")
def run_id(template: Template) -> str:
    return template.to_json()["Outputs"]["RunId"]["Value"]


# --- cluster ----------------------------------------------------------------------------------------------


def test_cluster_properties(template: Template):
    profile = only(template, "AWS::IAM::InstanceProfile")[0]
    security_configuration = only(template, "AWS::EMR::SecurityConfiguration")[0]
    template.has_resource_properties(
        "AWS::EMR::Cluster",
        {
            "ReleaseLabel": "emr-7.14.0",
            "Applications": [{"Name": "Spark"}],
            "Instances": {
                "MasterInstanceFleet": {
                    "Name": "Primary",
                    "TargetOnDemandCapacity": 1,
                    "TargetSpotCapacity": Match.absent(),
                    "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in X86_PRESET],
                    "LaunchSpecifications": ON_DEMAND,
                },
                "CoreInstanceFleet": {
                    "Name": "Core",
                    "TargetOnDemandCapacity": 2,
                    "TargetSpotCapacity": Match.absent(),
                    "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in X86_PRESET],
                    "LaunchSpecifications": ON_DEMAND,
                },
                "TaskInstanceFleets": Match.absent(),  # taskCapacity=0 (the default): no task fleet
                "MasterInstanceGroup": Match.absent(),
                "CoreInstanceGroup": Match.absent(),
                "KeepJobFlowAliveWhenNoSteps": False,
                "TerminationProtected": False,
                "Ec2SubnetId": Match.absent(),
                "Ec2SubnetIds": [
                    {"Ref": Match.string_like_regexp("^NetworkVpcEmrSubnet1")},
                    {"Ref": Match.string_like_regexp("^NetworkVpcEmrSubnet2")},
                ],
                "Ec2KeyName": Match.absent(),
            },
            "JobFlowRole": {"Ref": profile},
            "ServiceRole": {"Fn::GetAtt": [Match.string_like_regexp("^AccessServiceRole"), "Arn"]},
            "SecurityConfiguration": {"Ref": security_configuration},
            "VisibleToAllUsers": True,
            "EbsRootVolumeSize": 40,
            "AutoTerminationPolicy": {"IdleTimeout": 900},
            "Tags": Match.array_with([EMR_TAG]),
        },
    )


MIXED_CORE = ["m5.2xlarge", "m6i.2xlarge", "m5.4xlarge", "m6i.4xlarge"]
TASK_TYPES = ["m5.2xlarge", "m6i.2xlarge", "m7i.2xlarge"]


@pytest.fixture(scope="module")
def fleet_cluster(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A Spot task fleet, and core types of two sizes."""
    fleets = json.dumps({"core": MIXED_CORE, "task": TASK_TYPES})
    overrides = {"taskCapacity": "6", "coreCapacity": "3", "instanceTypes": fleets}
    return only(build_app(tmp_path_factory.mktemp("cdk-out"), overrides).pipeline, "AWS::EMR::Cluster")[1]


def test_spot_task_fleet(fleet_cluster: dict[str, Any]):
    """taskCapacity adds a Spot task fleet; the core fleet stays on-demand (it hosts the driver's AM)."""
    instances = fleet_cluster["Properties"]["Instances"]
    (task,) = instances["TaskInstanceFleets"]
    assert task == {
        "Name": "Task",
        "TargetSpotCapacity": 6,
        "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in TASK_TYPES],
        "LaunchSpecifications": {
            "SpotSpecification": {
                "AllocationStrategy": "price-capacity-optimized",
                "TimeoutAction": "SWITCH_TO_ON_DEMAND",
                "TimeoutDurationMinutes": 10,
            }
        },
    }
    core = instances["CoreInstanceFleet"]
    assert (core["TargetOnDemandCapacity"], core["LaunchSpecifications"]) == (3, ON_DEMAND)
    assert "TargetSpotCapacity" not in core
    primary = instances["MasterInstanceFleet"]
    assert (primary["TargetOnDemandCapacity"], primary["LaunchSpecifications"]) == (1, ON_DEMAND)


def test_mixed_sizes_weigh_by_executor_slots_and_size_spark_for_the_smallest(fleet_cluster: dict[str, Any]):
    configs = fleet_cluster["Properties"]["Instances"]["CoreInstanceFleet"]["InstanceTypeConfigs"]
    assert configs == [
        {"InstanceType": "m5.2xlarge", "WeightedCapacity": 1},
        {"InstanceType": "m6i.2xlarge", "WeightedCapacity": 1},
        {"InstanceType": "m5.4xlarge", "WeightedCapacity": 2},
        {"InstanceType": "m6i.4xlarge", "WeightedCapacity": 2},
    ]
    by_class = {c["Classification"]: c for c in fleet_cluster["Properties"]["Configurations"]}
    props = by_class["spark-defaults"]["ConfigurationProperties"]
    # 8 LiteRT workers of 256 MiB + the JVM off-heap (11g with TensorFlow workers)
    assert (props["spark.executor.cores"], props["spark.executor.memoryOverhead"]) == ("8", "3g")
    assert props["spark.task.cpus"] == "1"


def test_on_demand_task_fleet():
    from stacks.cluster import instance_fleets
    from stacks.config import config_from_mapping

    fleets = instance_fleets(config_from_mapping({"taskCapacity": "2", "taskMarket": "on-demand"}))
    task = fleets["task"]
    assert (task.target_on_demand_capacity, task.target_spot_capacity) == (2, None)
    assert task.launch_specifications.spot_specification is None
    assert task.launch_specifications.on_demand_specification.allocation_strategy == "lowest-price"


def test_application_master_stays_on_core_nodes(cluster: dict[str, Any]):
    by_class = {c["Classification"]: c for c in cluster["Configurations"]}
    assert by_class["yarn-site"]["ConfigurationProperties"] == {
        "yarn.node-labels.enabled": "true",
        "yarn.node-labels.am.default-node-label-expression": "CORE",
    }


def test_cluster_uses_the_three_groups(template: Template, cluster: dict[str, Any]):
    ids = {name: only_group(template, name) for name in ("Primary", "Core", "ServiceAccess")}
    instances = cluster["Instances"]
    assert instances["EmrManagedMasterSecurityGroup"] == {"Fn::GetAtt": [ids["Primary"], "GroupId"]}
    assert instances["EmrManagedSlaveSecurityGroup"] == {"Fn::GetAtt": [ids["Core"], "GroupId"]}
    assert instances["ServiceAccessSecurityGroup"] == {"Fn::GetAtt": [ids["ServiceAccess"], "GroupId"]}


def test_log_uri(cluster: dict[str, Any]):
    assert render(cluster["LogUri"]) == f"s3://{BUCKET}/emr-logs/"


def test_bootstrap_action_installs_the_lock_from_the_wheelhouse_asset(cluster: dict[str, Any]):
    (action,) = cluster["BootstrapActions"]
    script = action["ScriptBootstrapAction"]
    assert action["Name"] == "install-python-deps"
    assert re.fullmatch(ASSET + r"\.sh", render(script["Path"]))
    lock, wheelhouse = script["Args"]
    assert re.fullmatch(ASSET + r"\.lock", render(lock))
    assert re.fullmatch(ASSET + r"\.zip", render(wheelhouse))  # the wheelhouse folder, zipped by cdk deploy


def test_spark_runs_python_3_11(cluster: dict[str, Any]):
    by_class = {c["Classification"]: c for c in cluster["Configurations"]}
    assert set(by_class) == {"spark-env", "spark-defaults", "yarn-site"}
    (export,) = by_class["spark-env"]["Configurations"]
    assert export["Classification"] == "export"
    assert export["ConfigurationProperties"] == dict(SPARK_ENV_EXPORTS)
    assert export["ConfigurationProperties"]["PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    defaults = by_class["spark-defaults"]["ConfigurationProperties"]
    assert defaults == {
        **BASE_SPARK_DEFAULTS,
        **M5_XLARGE_EXECUTORS,
        "spark.executor.memoryOverhead": "2g",  # litert
        # the Python workers' S3 client (listing, reading the photos) is told the stack's region
        "spark.executorEnv.AWS_REGION": "eu-west-3",
        "spark.yarn.appMasterEnv.AWS_REGION": "eu-west-3",
    }
    for key in (
        "spark.pyspark.python",
        "spark.pyspark.driver.python",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON",
        "spark.executorEnv.PYSPARK_PYTHON",
    ):
        assert defaults[key] == PYSPARK_PYTHON == "/usr/bin/python3.11"
    assert defaults["spark.python.worker.reuse"] == "true"
    assert all(isinstance(v, str) for v in defaults.values())


# --- steps ------------------------------------------------------------------------------------------------


def steps_by_name(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["Name"]: step for step in cluster["Steps"]}


def test_two_steps_fit_then_transform(cluster: dict[str, Any]):
    assert [step["Name"] for step in cluster["Steps"]] == ["fit", "transform"]
    for step in cluster["Steps"]:
        assert step["ActionOnFailure"] == STEP_ACTION_ON_FAILURE == "CANCEL_AND_WAIT"
        assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"


def assert_spark_submit_head(args: list[str], mode: str) -> None:
    assert args[:4] == ["spark-submit", "--deploy-mode", "cluster", "--py-files"]
    assert re.fullmatch(ASSET + r"\.zip", args[4])
    assert re.fullmatch(ASSET + r"\.py", args[5])
    assert args[6] == mode


WEIGHTS_ASSET = ASSET + r"\.h5"


def weights_arg(args: list[str]) -> str:
    """The --weights value, checked to be the weights asset's s3:// URI (imagenet, resolved at synth)."""
    value = args[args.index("--weights") + 1]
    assert re.fullmatch(WEIGHTS_ASSET, value), value
    return value


def test_fit_arguments(cluster: dict[str, Any], run_id: str):
    args = render(steps_by_name(cluster)["fit"]["HadoopJarStep"]["Args"])
    assert_spark_submit_head(args, "fit")
    assert args[7:] == [
        "--input", f"s3://{BUCKET}/data/Training",
        "--output", f"s3://{BUCKET}/runs/{run_id}/fit",
        "--weights", weights_arg(args),
        "--variance", "0.95",
        "--image-size", "224",
        "--features-store", f"s3://{BUCKET}/features",
    ]  # fmt: skip


def test_transform_arguments(cluster: dict[str, Any], run_id: str):
    steps = steps_by_name(cluster)
    args = render(steps["transform"]["HadoopJarStep"]["Args"])
    assert_spark_submit_head(args, "transform")
    fit_args = render(steps["fit"]["HadoopJarStep"]["Args"])
    assert args[4:6] == fit_args[4:6]  # the same code
    assert args[7:] == [
        "--model", f"s3://{BUCKET}/runs/{run_id}/fit/model",
        "--input", f"s3://{BUCKET}/data/Test",
        "--output", f"s3://{BUCKET}/runs/{run_id}/transform",
        "--weights", weights_arg(fit_args),
        "--features-store", f"s3://{BUCKET}/features",
    ]  # fmt: skip


def test_each_argument_is_one_token_and_unique(cluster: dict[str, Any]):
    for step in cluster["Steps"]:
        args = render(step["HadoopJarStep"]["Args"])
        assert all(isinstance(a, str) and " " not in a for a in args)
        assert len(args) == len(set(args))
        assert not any(a == "--conf" for a in args)


def test_job_code_assets_are_the_deterministic_zip_and_entry(default_synth: Synth, cluster: dict[str, Any]):
    args = render(steps_by_name(cluster)["fit"]["HadoopJarStep"]["Args"])
    zip_hash = args[4].rsplit("/", 1)[1].removesuffix(".zip")
    staged = asset_source(default_synth.outdir, zip_hash)
    built = packaging.zip_bytes(PROJECT_ROOT / "spark_job")
    assert staged.read_bytes() == built  # uploaded as-is: the zip, not a re-zipped folder
    entry_hash = args[5].rsplit("/", 1)[1].removesuffix(".py")
    entry = asset_source(default_synth.outdir, entry_hash)
    assert entry.read_bytes() == (PROJECT_ROOT / packaging.ENTRY_FILE).read_bytes()
    weights_hash = weights_arg(args).rsplit("/", 1)[1].removesuffix(".h5")
    assert asset_source(default_synth.outdir, weights_hash).read_bytes() == WEIGHTS_FILE.read_bytes()


# --- run id -----------------------------------------------------------------------------------------------


def test_run_id_outputs(template: Template, run_id: str):
    outputs = template.to_json()["Outputs"]
    assert re.fullmatch(r"run-[0-9a-f]{12}", run_id)
    assert render(outputs["RunOutputUri"]["Value"]) == f"s3://{BUCKET}/runs/{run_id}/"
    assert render(outputs["LogUri"]["Value"]) == f"s3://{BUCKET}/emr-logs/"


def test_outputs(template: Template):
    outputs = template.to_json()["Outputs"]
    assert set(outputs) == {
        "BucketName",
        "ClusterId",
        "RunId",
        "RunOutputUri",
        "LogUri",
        "ClusterConsoleUrl",
        "RunRequestParameter",  # what `make run` reads; no RunSchedule output without -c schedule
    }
    parameter = only(template, "AWS::SSM::Parameter")[0]
    assert outputs["RunRequestParameter"]["Value"] == {"Ref": parameter}
    cluster_id = only(template, "AWS::EMR::Cluster")[0]
    assert outputs["ClusterId"]["Value"] == {"Ref": cluster_id}
    assert render(outputs["BucketName"]["Value"]) == BUCKET
    assert render(outputs["ClusterConsoleUrl"]["Value"]) == (
        "https://${AWS::Region}.console.aws.amazon.com/emr/home?region=${AWS::Region}"
        f"#/clusterDetails/${{{cluster_id}}}"
    )


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("spark_job", "bootstrap"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def synth_run_id(tmp: pytest.TempPathFactory, overrides: dict[str, Any], root: Path = PROJECT_ROOT) -> str:
    synth = build_app(tmp.mktemp("cdk-out"), overrides, project_root=root)
    return synth.stacks.pipeline.run_id


def test_run_id_is_stable_and_follows_code_and_config(
    tmp_path_factory: pytest.TempPathFactory, project_copy: Path, run_id: str
):
    copy_id = synth_run_id(tmp_path_factory, {}, project_copy)
    assert copy_id == run_id  # same code, same config: same run
    # a TERMINATED cluster's AutoTerminationPolicy cannot be updated in place: a new timeout is a new cluster
    assert synth_run_id(tmp_path_factory, {"idleTimeoutSeconds": 300}, project_copy) != run_id
    assert synth_run_id(tmp_path_factory, {"retainData": "false"}, project_copy) == run_id  # data stack only
    assert synth_run_id(tmp_path_factory, {"imageSize": "160"}, project_copy) != run_id
    other_weights = project_copy / "other-weights.h5"
    other_weights.write_bytes(WEIGHTS_FILE.read_bytes() + b"\0")
    assert synth_run_id(tmp_path_factory, {"weightsFile": str(other_weights)}, project_copy) != run_id
    script = project_copy / "bootstrap" / "install_python_deps.sh"
    script.write_text(script.read_text() + "\n# changed\n")
    assert synth_run_id(tmp_path_factory, {}, project_copy) != run_id


def test_run_id_follows_the_lock(tmp_path_factory: pytest.TempPathFactory, project_copy: Path, run_id: str):
    """Another lock is another runtime, hence another run (its wheelhouse: the same wheels, linked, with
    a manifest naming the edited lock)."""
    lock = project_copy / "spark_job" / "requirements.x86_64.lock"
    original = lock.read_bytes()
    wheelhouse = ensure_wheelhouse()
    stand_in = tmp_path_factory.mktemp("wheelhouse")
    for wheel in wheelhouse.glob("*.whl"):
        (stand_in / wheel.name).symlink_to(wheel)
    manifest = json.loads((wheelhouse / "wheelhouse.json").read_text())
    try:
        lock.write_bytes(original + b"# an edit\n")
        manifest["lockSha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()
        (stand_in / "wheelhouse.json").write_text(json.dumps(manifest))
        assert synth_run_id(tmp_path_factory, {"wheelhouseDir": str(stand_in)}, project_copy) != run_id
    finally:
        lock.write_bytes(original)


def test_run_id_override_and_variant_arguments(tmp_path_factory: pytest.TempPathFactory):
    synth = build_app(
        tmp_path_factory.mktemp("cdk-out"),
        {"runId": "2026-11-21a", "components": "224", "imageSize": "224", "coreCapacity": "3"},
    )
    template = synth.pipeline
    assert template.to_json()["Outputs"]["RunId"]["Value"] == "2026-11-21a"
    cluster = only(template, "AWS::EMR::Cluster")[1]["Properties"]
    assert cluster["Name"] == "fruits-pipeline-2026-11-21a"
    assert cluster["Instances"]["CoreInstanceFleet"]["TargetOnDemandCapacity"] == 3
    args = render(steps_by_name(cluster)["fit"]["HadoopJarStep"]["Args"])
    # 224 twice would be a duplicate Args item: the second one is written as one --flag=value token
    assert args[7:] == [
        "--input", f"s3://{BUCKET}/data/Training",
        "--output", f"s3://{BUCKET}/runs/2026-11-21a/fit",
        "--weights", weights_arg(args),
        "--components", "224",
        "--image-size=224",
        "--features-store", f"s3://{BUCKET}/features",
    ]  # fmt: skip


# --- network ----------------------------------------------------------------------------------------------


def emr_subnets(template: Template) -> dict[str, dict[str, Any]]:
    return {
        k: r for k, r in template.find_resources("AWS::EC2::Subnet").items() if k.startswith("NetworkVpcEmr")
    }


def test_network_has_no_internet_route_by_default(template: Template, cluster: dict[str, Any]):
    """egress=none: no NAT, no internet gateway, no public subnet, no 0.0.0.0/0 route; S3 by its gateway
    endpoint and KMS by an interface endpoint with an interface in each of the cluster's isolated subnets,
    one per AZ."""
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::Subnet", 2)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    template.resource_count_is("AWS::EC2::VPCGatewayAttachment", 0)
    template.resource_count_is("AWS::EC2::EIP", 0)
    template.resource_count_is("AWS::EC2::FlowLog", 1)
    routes = template.find_resources("AWS::EC2::Route")
    assert not [r for r in routes.values() if r["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert not [r for r in routes.values() if r["Properties"].get("DestinationIpv6CidrBlock") == "::/0"]
    subnets = emr_subnets(template)
    assert len(subnets) == 2
    # One AZ each (env-agnostic: the first two of Fn::GetAZs), and the cluster takes both.
    assert [s["Properties"]["AvailabilityZone"] for s in subnets.values()] == [
        {"Fn::Select": [index, {"Fn::GetAZs": ""}]} for index in (0, 1)
    ]
    assert cluster["Instances"]["Ec2SubnetIds"] == [{"Ref": k} for k in subnets]
    route_tables = []
    for subnet_id, subnet in subnets.items():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
        assert {"Key": "aws-cdk:subnet-type", "Value": "Isolated"} in subnet["Properties"]["Tags"]
        route_table = Capture()
        template.has_resource_properties(
            "AWS::EC2::SubnetRouteTableAssociation",
            {"SubnetId": {"Ref": subnet_id}, "RouteTableId": {"Ref": route_table}},
        )
        route_tables.append({"Ref": route_table.as_string()})
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "VpcEndpointType": "Gateway",
            "ServiceName": {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".s3"]]},
            "RouteTableIds": route_tables,
        },
    )
    kms_group = logical_id(template, "AWS::EC2::SecurityGroup", "NetworkKmsEndpointSecurityGroup")
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "VpcEndpointType": "Interface",
            "ServiceName": "com.amazonaws.eu-west-3.kms",
            "PrivateDnsEnabled": True,
            "SubnetIds": [{"Ref": k} for k in subnets],
            "SecurityGroupIds": [{"Fn::GetAtt": [kms_group, "GroupId"]}],
        },
    )


def test_kms_endpoint_admits_https_from_the_cluster_groups_only(template: Template):
    kms_group = logical_id(template, "AWS::EC2::SecurityGroup", "NetworkKmsEndpointSecurityGroup")
    props = template.find_resources("AWS::EC2::SecurityGroup")[kms_group]["Properties"]
    assert "SecurityGroupIngress" not in props
    # allow_all_outbound=False: CDK's placeholder rule that matches no traffic
    assert [r["CidrIp"] for r in props["SecurityGroupEgress"]] == ["255.255.255.255/32"]
    rules = [
        r["Properties"]
        for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [kms_group, "GroupId"]}
    ]
    sources = sorted(r["SourceSecurityGroupId"]["Fn::GetAtt"][0] for r in rules)
    assert sources == sorted(only_group(template, n) for n in ("Core", "Primary"))
    assert {(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules} == {("tcp", 443, 443)}


def test_emr_managed_tag_only_on_the_vpc_subnet_groups_and_cluster(template: Template):
    tagged = {
        logical_id: resource["Type"]
        for logical_id, resource in template.to_json()["Resources"].items()
        if EMR_TAG in resource.get("Properties", {}).get("Tags", [])
    }
    assert sorted(tagged.values()) == sorted(
        ["AWS::EC2::VPC", *["AWS::EC2::Subnet"] * 2, *["AWS::EC2::SecurityGroup"] * 3, "AWS::EMR::Cluster"]
    )
    assert not any(k.startswith("NetworkKms") for k in tagged)


@pytest.fixture(scope="module")
def nat_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_app(tmp_path_factory.mktemp("cdk-out"), {"egress": "nat"}).pipeline


def test_network_with_egress_nat(nat_template: Template):
    """One NAT gateway (in the first AZ's public subnet) for both AZs' private subnets: README, Network."""
    template = nat_template
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::Subnet", 4)  # public + private in each of two AZs
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    template.resource_count_is("AWS::EC2::InternetGateway", 1)
    template.resource_count_is("AWS::EC2::FlowLog", 1)
    template.resource_count_is("AWS::EC2::VPCEndpoint", 1)  # S3 only: KMS goes through the NAT
    template.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL", "ResourceType": "VPC"})
    (nat_id,) = template.find_resources("AWS::EC2::NatGateway")
    routes = [
        r["Properties"]["RouteTableId"]["Ref"]
        for r in template.find_resources("AWS::EC2::Route").values()
        if r["Properties"].get("NatGatewayId") == {"Ref": nat_id}
    ]
    assert sorted(t[: len("NetworkVpcEmrSubnetN")] for t in routes) == [
        "NetworkVpcEmrSubnet1",
        "NetworkVpcEmrSubnet2",
    ]
    private_tables = [{"Ref": t} for t in routes]
    endpoint = only(template, "AWS::EC2::VPCEndpoint")[1]["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert sorted(endpoint["RouteTableIds"], key=str) == sorted(private_tables, key=str)
    # The EMR tag on the VPC, the EMR subnets, the groups and the cluster: not on the public subnets, the
    # internet gateway, the NAT or its address.
    resources = template.to_json()["Resources"]
    tagged = {
        k: r["Type"] for k, r in resources.items() if EMR_TAG in r.get("Properties", {}).get("Tags", [])
    }
    assert sorted(tagged.values()) == sorted(
        ["AWS::EC2::VPC", *["AWS::EC2::Subnet"] * 2, *["AWS::EC2::SecurityGroup"] * 3, "AWS::EMR::Cluster"]
    )
    subnets = emr_subnets(template)
    assert sorted(k for k, t in tagged.items() if t == "AWS::EC2::Subnet") == sorted(subnets)
    cluster = only(template, "AWS::EMR::Cluster")[1]
    assert cluster["Properties"]["Instances"]["Ec2SubnetIds"] == [{"Ref": k} for k in subnets]
    for subnet in subnets.values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    for index in (1, 2):  # the NAT routes of both AZs exist before the cluster
        assert any(d.startswith(f"NetworkVpcEmrSubnet{index}DefaultRoute") for d in cluster["DependsOn"])


# --- security groups --------------------------------------------------------------------------------------


def only_group(template: Template, name: str) -> str:
    (logical_id,) = [
        k for k in template.find_resources("AWS::EC2::SecurityGroup") if k.startswith(f"SecurityGroups{name}")
    ]
    return logical_id


def test_security_groups_have_exactly_the_documented_rules(template: Template):
    groups = {only_group(template, n): n for n in ("Primary", "Core", "ServiceAccess")}
    # EMR must not create default groups: ours are the three, plus the KMS endpoint's
    template.resource_count_is("AWS::EC2::SecurityGroup", 4)
    kms_group = logical_id(template, "AWS::EC2::SecurityGroup", "NetworkKmsEndpointSecurityGroup")

    def group(value: dict[str, Any]) -> str:
        return groups[value["Fn::GetAtt"][0]]

    ingress = {
        (group(r["Properties"]["GroupId"]), group(r["Properties"]["SourceSecurityGroupId"]),
         r["Properties"]["IpProtocol"], r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"]["Fn::GetAtt"][0] != kms_group
    }  # fmt: skip
    expected = {
        (target, source, protocol, low, high)
        for target in ("Primary", "Core")
        for source in ("Primary", "Core")
        for protocol, low, high in (("icmp", -1, -1), ("tcp", 0, 65535), ("udp", 0, 65535))
    }
    expected |= {
        ("Primary", "ServiceAccess", "tcp", 8443, 8443),
        ("Core", "ServiceAccess", "tcp", 8443, 8443),
    }
    expected |= {("ServiceAccess", "Primary", "tcp", 9443, 9443)}
    assert ingress == expected
    template.resource_count_is("AWS::EC2::SecurityGroupIngress", len(expected) + 2)  # + 443 to KMS

    egress = {
        (group(r["Properties"]["GroupId"]), group(r["Properties"]["DestinationSecurityGroupId"]),
         r["Properties"]["IpProtocol"], r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in template.find_resources("AWS::EC2::SecurityGroupEgress").values()
    }  # fmt: skip
    assert egress == {
        ("ServiceAccess", "Primary", "tcp", 8443, 8443),
        ("ServiceAccess", "Core", "tcp", 8443, 8443),
    }

    for group_id, name in groups.items():
        props = template.find_resources("AWS::EC2::SecurityGroup")[group_id]["Properties"]
        assert "SecurityGroupIngress" not in props
        assert EMR_TAG in props["Tags"]
        assert props["GroupDescription"].startswith("EMR ")
        inline_egress = props.get("SecurityGroupEgress", [])
        if name == "ServiceAccess":
            assert inline_egress == []  # only the two 8443 rules above
        else:  # nodes reach S3 and KMS through the endpoints (and the internet through a NAT if any)
            assert inline_egress == [
                {
                    "CidrIp": "0.0.0.0/0",
                    "Description": "Allow all outbound traffic by default",
                    "IpProtocol": "-1",
                }
            ]


def test_no_ssh_and_no_key_pair(template: Template, cluster: dict[str, Any]):
    assert "Ec2KeyName" not in cluster["Instances"]
    for rule in template.find_resources("AWS::EC2::SecurityGroupIngress").values():
        props = rule["Properties"]
        assert not (props["IpProtocol"] == "tcp" and props["FromPort"] == 22 == props["ToPort"])


# --- IAM, KMS and security configuration ----------------------------------------------------------------


def logical_id(template: Template, type_name: str, prefix: str) -> str:
    (found,) = [k for k in template.find_resources(type_name) if k.startswith(prefix)]
    return found


def statements(template: Template, logical_id: str) -> list[dict[str, Any]]:
    return template.find_resources("AWS::IAM::Policy")[logical_id]["Properties"]["PolicyDocument"][
        "Statement"
    ]


def test_ec2_role_and_instance_profile(template: Template):
    role_id = logical_id(template, "AWS::IAM::Role", "AccessEc2Role")
    role = template.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}}
    ]
    # only the data stack's customer-managed policy, no AWS-managed one
    assert [render(arn) for arn in role["ManagedPolicyArns"]] == [
        "${FruitsData.PublishOutputRefClusterNodeDataAccess3BDA35DF9E91066F}"
    ]
    assert "Policies" not in role
    template.has_resource_properties(
        "AWS::IAM::InstanceProfile", {"InstanceProfileName": {"Ref": role_id}, "Roles": [{"Ref": role_id}]}
    )
    policy_id = logical_id(template, "AWS::IAM::Policy", "AccessEc2RoleDefaultPolicy")
    by_sid = {s["Sid"]: s for s in statements(template, policy_id)}
    assert set(by_sid) == {"ReadJobCode", "UseLocalDiskKey"}
    assert by_sid["ReadJobCode"]["Action"] == "s3:GetObject"
    code_objects = sorted(render(r) for r in by_sid["ReadJobCode"]["Resource"])
    assert len(code_objects) == 6  # code zip, entry, bootstrap, lock, wheelhouse zip, weights
    assert sorted(arn.rsplit(".", 1)[1] for arn in code_objects) == ["h5", "lock", "py", "sh", "zip", "zip"]
    asset_object = r"arn:aws:s3:::cdk-hnb659fds-assets-\$\{AWS::AccountId\}-eu-west-3/[0-9a-f]{64}\.\w+"
    assert all(re.fullmatch(asset_object, arn) for arn in code_objects)
    key_id = only(template, "AWS::KMS::Key")[0]
    assert by_sid["UseLocalDiskKey"]["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_service_role(template: Template):
    role_id = logical_id(template, "AWS::IAM::Role", "AccessServiceRole")
    role = template.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "elasticmapreduce.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert [render(a) for a in role["ManagedPolicyArns"]] == [
        "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
    ]
    policy_id = logical_id(template, "AWS::IAM::Policy", "AccessServiceRoleDefault")
    by_sid = {s["Sid"]: s for s in statements(template, policy_id)}
    ec2_role = logical_id(template, "AWS::IAM::Role", "AccessEc2Role")
    assert by_sid["PassClusterInstanceRole"] == {
        "Sid": "PassClusterInstanceRole",
        "Action": "iam:PassRole",
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [ec2_role, "Arn"]},
        "Condition": {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}},
    }
    assert by_sid["GrantEbsKeyToAwsResources"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_security_configuration(template: Template):
    key_id, key = only(template, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["PendingWindowInDays"] == 7
    document = only(template, "AWS::EMR::SecurityConfiguration")[1]["Properties"]["SecurityConfiguration"]
    assert document == {
        "EncryptionConfiguration": {
            "EnableAtRestEncryption": True,
            "EnableInTransitEncryption": False,
            "AtRestEncryptionConfiguration": {
                "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"},
                "LocalDiskEncryptionConfiguration": {
                    "EncryptionKeyProviderType": "AwsKms",
                    "AwsKmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
                    "EnableEbsEncryption": True,
                },
            },
        },
        "InstanceMetadataServiceConfiguration": {
            "MinimumInstanceMetadataServiceVersion": 2,
            "HttpPutResponseHopLimit": 1,
        },
    }


def test_cluster_waits_for_permissions_and_egress(template: Template):
    depends_on = only(template, "AWS::EMR::Cluster")[1]["DependsOn"]
    assert any(d.startswith("AccessEc2RoleDefaultPolicy") for d in depends_on)
    assert any(d.startswith("AccessServiceRoleDefaultPolicy") for d in depends_on)
    assert any(d.startswith("NetworkVpcS3") for d in depends_on)  # the S3 gateway endpoint
    assert any(d.startswith("NetworkVpcKms") for d in depends_on)  # the KMS interface endpoint


def test_resource_counts(template: Template):
    counts = {
        "AWS::EMR::Cluster": 1,
        "AWS::EMR::SecurityConfiguration": 1,
        "AWS::KMS::Key": 1,
        "AWS::IAM::InstanceProfile": 1,
        "AWS::EC2::SecurityGroup": 4,  # primary, core, service access, KMS endpoint
        "AWS::EC2::SecurityGroupIngress": 17,
        "AWS::EC2::SecurityGroupEgress": 2,
        "AWS::EC2::VPCEndpoint": 2,  # S3 gateway, KMS interface
        "Custom::SecurityGroupRuleRevoker": 1,
        "AWS::Lambda::Function": 2,  # the revoker, and CDK's default-security-group restriction
        "AWS::EMR::Step": 0,  # steps are part of the cluster
        "AWS::SSM::Parameter": 1,  # the published RunJobFlow request
        "AWS::Scheduler::Schedule": 0,  # -c schedule is off by default
        "AWS::S3::Bucket": 0,  # stateful resources live in FruitsData
    }
    for type_name, count in counts.items():
        template.resource_count_is(type_name, count)


def test_external_input_and_s3_weights_get_read_only_grants(tmp_path_factory: pytest.TempPathFactory):
    synth = build_app(
        tmp_path_factory.mktemp("cdk-out"),
        {"inputUri": "s3://other-bucket/fruits-360", "weights": "s3://models-bucket/w/mobilenet.h5"},
    )
    template = synth.pipeline
    policy_id = logical_id(template, "AWS::IAM::Policy", "AccessEc2RoleDefaultPolicy")
    by_sid = {s["Sid"]: s for s in statements(template, policy_id)}
    assert by_sid["ListInputBucket"]["Action"] == "s3:ListBucket"
    assert render(by_sid["ListInputBucket"]["Resource"]) == "arn:aws:s3:::other-bucket"
    assert by_sid["ReadInput"]["Action"] == "s3:GetObject"
    assert render(by_sid["ReadInput"]["Resource"]) == "arn:aws:s3:::other-bucket/fruits-360/*"
    assert by_sid["ReadWeights"]["Action"] == "s3:GetObject"
    assert render(by_sid["ReadWeights"]["Resource"]) == "arn:aws:s3:::models-bucket/w/mobilenet.h5"
    cluster = only(template, "AWS::EMR::Cluster")[1]["Properties"]
    fit = render(steps_by_name(cluster)["fit"]["HadoopJarStep"]["Args"])
    assert fit[fit.index("--input") + 1] == "s3://other-bucket/fruits-360/Training"
    assert fit[fit.index("--weights") + 1] == "s3://models-bucket/w/mobilenet.h5"
    # the data stack then grants no read on its data/ prefix
    data_policy = only(synth.data, "AWS::IAM::ManagedPolicy")[1]["Properties"]["PolicyDocument"]["Statement"]
    assert "ReadInput" not in {s["Sid"] for s in data_policy}


# --- emr-spark-8.1.0, the LTS line (stacks/release_lines.py) ---------------------------------------------


@pytest.fixture(scope="module")
def lts_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_app(tmp_path_factory.mktemp("cdk-out"), {"releaseLabel": "emr-spark-8.1.0"}).pipeline


def test_lts_cluster_runs_spark_on_python_3_11(lts_template: Template, cluster: dict[str, Any], run_id: str):
    lts = only(lts_template, "AWS::EMR::Cluster")[1]["Properties"]
    assert lts["ReleaseLabel"] == "emr-spark-8.1.0"
    assert lts["Applications"] == [{"Name": "Spark"}]
    # The same configurations as on 7.x (the classifications exist on both; the interpreter is the same).
    assert lts["Configurations"] == cluster["Configurations"]
    # Another line is another run: the run id (in the name and the steps' output) follows the label.
    lts_run_id = lts_template.to_json()["Outputs"]["RunId"]["Value"]
    assert lts_run_id != run_id
    assert lts["Name"] == f"fruits-pipeline-{lts_run_id}"


def test_lts_security_groups_take_https_for_the_emr_service_endpoint_and_no_8443_9443(lts_template: Template):
    """emr-spark-8.x: 443 from the VPC into service access; the 7.x 8443/9443 rules are gone; the primary's
    outbound 443 to service access is its all-outbound rule."""
    template = lts_template
    groups = {only_group(template, n): n for n in ("Primary", "Core", "ServiceAccess")}
    template.resource_count_is("AWS::EC2::SecurityGroup", 4)
    kms_group = logical_id(template, "AWS::EC2::SecurityGroup", "NetworkKmsEndpointSecurityGroup")
    ingress = {
        (groups[r["Properties"]["GroupId"]["Fn::GetAtt"][0]],
         groups[r["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]],
         r["Properties"]["IpProtocol"], r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"]["Fn::GetAtt"][0] != kms_group
    }  # fmt: skip
    assert ingress == {
        (target, source, protocol, low, high)
        for target in ("Primary", "Core")
        for source in ("Primary", "Core")
        for protocol, low, high in (("icmp", -1, -1), ("tcp", 0, 65535), ("udp", 0, 65535))
    }
    template.resource_count_is("AWS::EC2::SecurityGroupIngress", len(ingress) + 2)  # + 443 to KMS
    template.resource_count_is("AWS::EC2::SecurityGroupEgress", 0)
    resources = template.find_resources("AWS::EC2::SecurityGroup")
    (vpc,) = template.find_resources("AWS::EC2::VPC").values()
    service_access = resources[only_group(template, "ServiceAccess")]["Properties"]
    assert service_access["SecurityGroupIngress"] == [
        {
            "CidrIp": vpc["Properties"]["CidrBlock"],  # the VPC's range, as a literal
            "Description": "HTTPS from the VPC to the EMR service endpoint (EMR 8)",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]
    assert [r["CidrIp"] for r in service_access["SecurityGroupEgress"]] == ["255.255.255.255/32"]  # none
    for name in ("Primary", "Core"):
        props = resources[only_group(template, name)]["Properties"]
        assert "SecurityGroupIngress" not in props
        assert props["SecurityGroupEgress"] == [
            {
                "CidrIp": "0.0.0.0/0",
                "Description": "Allow all outbound traffic by default",
                "IpProtocol": "-1",
            }
        ]
    for props in (r["Properties"] for k, r in resources.items() if k in groups):
        assert EMR_TAG in props["Tags"]


def test_lts_service_role_may_create_only_the_emr_service_endpoint(lts_template: Template):
    template = lts_template
    policy_id = logical_id(template, "AWS::IAM::Policy", "AccessServiceRoleDefault")
    by_sid = {s.pop("Sid"): s for s in render(statements(template, policy_id))}
    endpoints = "arn:aws:ec2:eu-west-3:${AWS::AccountId}:vpc-endpoint/*"
    request_tags = {
        "aws:RequestTag/Name": "emr-service-vpce",
        "aws:RequestTag/for-use-with-amazon-emr-managed-policies": "true",
    }
    vpc = logical_id(template, "AWS::EC2::VPC", "NetworkVpc")
    subnets = sorted(emr_subnets(template))
    service_access = only_group(template, "ServiceAccess")
    network = by_sid.pop("EmrServiceEndpointInClusterNetwork")
    assert network["Action"] == ["ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint"]
    assert sorted(network["Resource"]) == sorted(
        [
            f"arn:aws:ec2:eu-west-3:${{AWS::AccountId}}:vpc/${{{vpc}}}",
            *(f"arn:aws:ec2:eu-west-3:${{AWS::AccountId}}:subnet/${{{s}}}" for s in subnets),
            f"arn:aws:ec2:eu-west-3:${{AWS::AccountId}}:security-group/${{{service_access}.GroupId}}",
        ]
    )
    assert "Condition" not in network
    assert by_sid.pop("CreateEmrServiceEndpoint") == {
        "Action": "ec2:CreateVpcEndpoint",
        "Effect": "Allow",
        "Resource": endpoints,
        "Condition": {"StringEquals": {"ec2:VpceServiceOwner": "amazon", **request_tags}},
    }
    assert by_sid.pop("TagEmrServiceEndpointOnCreate") == {
        "Action": "ec2:CreateTags",
        "Effect": "Allow",
        "Resource": endpoints,
        "Condition": {"StringEquals": {"ec2:CreateAction": "CreateVpcEndpoint", **request_tags}},
    }
    assert by_sid.pop("ModifyEmrServiceEndpoint") == {
        "Action": "ec2:ModifyVpcEndpoint",
        "Effect": "Allow",
        "Resource": endpoints,
        "Condition": {
            "StringEquals": {
                "aws:ResourceTag/Name": "emr-service-vpce",
                "aws:ResourceTag/for-use-with-amazon-emr-managed-policies": "true",
            }
        },
    }
    assert set(by_sid) == {"PassClusterInstanceRole", "UseEbsKey", "GrantEbsKeyToAwsResources"}


def test_the_7x_service_role_has_no_endpoint_permission(template: Template):
    policy_id = logical_id(template, "AWS::IAM::Policy", "AccessServiceRoleDefault")
    sids = {s["Sid"] for s in statements(template, policy_id)}
    assert sids == {"PassClusterInstanceRole", "UseEbsKey", "GrantEbsKeyToAwsResources"}
    text = json.dumps(statements(template, policy_id))
    assert "VpcEndpoint" not in text


def test_lts_teardown_deletes_the_endpoints_the_service_role_can_create(lts_template: Template):
    """What EMR can create with this stack's roles (the tags are a condition of creating), the revoker may
    delete: the same tags are its deletion condition."""
    roles = lts_template.find_resources("AWS::IAM::Role")
    (revoker_role,) = [r for k, r in roles.items() if k.startswith("SgRuleRevokerRole")]
    (policy,) = revoker_role["Properties"]["Policies"]
    revoker = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    deletable = revoker["DeleteEmrServiceEndpoints"]["Condition"]["StringEquals"]
    service_policy = logical_id(lts_template, "AWS::IAM::Policy", "AccessServiceRoleDefault")
    service = {s["Sid"]: s for s in statements(lts_template, service_policy)}
    creatable = service["CreateEmrServiceEndpoint"]["Condition"]["StringEquals"]
    created_with = {k.removeprefix("aws:RequestTag/"): v for k, v in creatable.items() if "RequestTag" in k}
    deleted_by = {k.removeprefix("aws:ResourceTag/"): v for k, v in deletable.items()}
    assert (
        created_with
        == deleted_by
        == {
            "Name": "emr-service-vpce",
            "for-use-with-amazon-emr-managed-policies": "true",
        }
    )
    # every statement of the service role that creates an endpoint has that condition
    creating = [s for s in service.values() if "ec2:CreateVpcEndpoint" in str(s["Action"])]
    assert [s["Sid"] for s in creating if "vpc-endpoint/*" in json.dumps(s["Resource"])] == [
        "CreateEmrServiceEndpoint"
    ]
