"""FruitsPipeline: cluster, steps, Spark settings, network, security groups, IAM, outputs, run id."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from spark_job.names import STEP_ACTION_ON_FAILURE
from stacks import PROJECT_ROOT, packaging
from stacks.spark_settings import PYSPARK_PYTHON, SPARK_DEFAULTS, SPARK_ENV_EXPORTS
from tests.cfn_template import render
from tests.infra.conftest import Synth, build_app, only

EMR_TAG = {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}
ASSET = r"s3://cdk-hnb659fds-assets-\$\{AWS::AccountId\}-eu-west-3/[0-9a-f]{64}"
BUCKET = "${FruitsData.BucketName}"


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
                "MasterInstanceGroup": {
                    "InstanceCount": 1,
                    "InstanceType": "m5.xlarge",
                    "Market": "ON_DEMAND",
                },
                "CoreInstanceGroup": {"InstanceCount": 2, "InstanceType": "m5.xlarge", "Market": "ON_DEMAND"},
                "KeepJobFlowAliveWhenNoSteps": False,
                "TerminationProtected": False,
                "Ec2SubnetId": {"Ref": Match.string_like_regexp("^NetworkVpcEmrSubnet")},
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


def test_cluster_uses_the_three_groups(template: Template, cluster: dict[str, Any]):
    ids = {name: only_group(template, name) for name in ("Primary", "Core", "ServiceAccess")}
    instances = cluster["Instances"]
    assert instances["EmrManagedMasterSecurityGroup"] == {"Fn::GetAtt": [ids["Primary"], "GroupId"]}
    assert instances["EmrManagedSlaveSecurityGroup"] == {"Fn::GetAtt": [ids["Core"], "GroupId"]}
    assert instances["ServiceAccessSecurityGroup"] == {"Fn::GetAtt": [ids["ServiceAccess"], "GroupId"]}


def test_log_uri(cluster: dict[str, Any]):
    assert render(cluster["LogUri"]) == f"s3://{BUCKET}/emr-logs/"


def test_bootstrap_action_installs_the_pins_from_their_own_asset(cluster: dict[str, Any]):
    (action,) = cluster["BootstrapActions"]
    script = action["ScriptBootstrapAction"]
    assert action["Name"] == "install-python-deps"
    assert re.fullmatch(ASSET + r"\.sh", render(script["Path"]))
    (requirements,) = script["Args"]
    assert re.fullmatch(ASSET + r"\.txt", render(requirements))


def test_spark_runs_python_3_11(cluster: dict[str, Any]):
    by_class = {c["Classification"]: c for c in cluster["Configurations"]}
    assert set(by_class) == {"spark-env", "spark-defaults"}
    (export,) = by_class["spark-env"]["Configurations"]
    assert export["Classification"] == "export"
    assert export["ConfigurationProperties"] == dict(SPARK_ENV_EXPORTS)
    assert export["ConfigurationProperties"]["PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    defaults = by_class["spark-defaults"]["ConfigurationProperties"]
    assert defaults == dict(SPARK_DEFAULTS)
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


def test_fit_arguments(cluster: dict[str, Any], run_id: str):
    args = render(steps_by_name(cluster)["fit"]["HadoopJarStep"]["Args"])
    assert_spark_submit_head(args, "fit")
    assert args[7:] == [
        "--input", f"s3://{BUCKET}/data/Training",
        "--output", f"s3://{BUCKET}/runs/{run_id}/fit",
        "--weights", "imagenet",
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
        "--weights", "imagenet",
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
    staged = default_synth.outdir / f"asset.{zip_hash}.zip"
    built = packaging.zip_bytes(PROJECT_ROOT / "spark_job")
    assert staged.read_bytes() == built  # uploaded as-is: the zip, not a re-zipped folder
    entry_hash = args[5].rsplit("/", 1)[1].removesuffix(".py")
    entry = default_synth.outdir / f"asset.{entry_hash}.py"
    assert entry.read_bytes() == (PROJECT_ROOT / packaging.ENTRY_FILE).read_bytes()


# --- run id -----------------------------------------------------------------------------------------------


def test_run_id_outputs(template: Template, run_id: str):
    outputs = template.to_json()["Outputs"]
    assert re.fullmatch(r"run-[0-9a-f]{12}", run_id)
    assert render(outputs["RunOutputUri"]["Value"]) == f"s3://{BUCKET}/runs/{run_id}/"
    assert render(outputs["LogUri"]["Value"]) == f"s3://{BUCKET}/emr-logs/"


def test_outputs(template: Template):
    outputs = template.to_json()["Outputs"]
    assert set(outputs) == {"BucketName", "ClusterId", "RunId", "RunOutputUri", "LogUri", "ClusterConsoleUrl"}
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
    script = project_copy / "bootstrap" / "install_python_deps.sh"
    script.write_text(script.read_text() + "\n# changed\n")
    assert synth_run_id(tmp_path_factory, {}, project_copy) != run_id


def test_run_id_override_and_variant_arguments(tmp_path_factory: pytest.TempPathFactory):
    synth = build_app(
        tmp_path_factory.mktemp("cdk-out"),
        {"runId": "2026-11-21a", "components": "224", "imageSize": "224", "coreCount": "3"},
    )
    template = synth.pipeline
    assert template.to_json()["Outputs"]["RunId"]["Value"] == "2026-11-21a"
    cluster = only(template, "AWS::EMR::Cluster")[1]["Properties"]
    assert cluster["Name"] == "fruits-pipeline-2026-11-21a"
    assert cluster["Instances"]["CoreInstanceGroup"]["InstanceCount"] == 3
    args = render(steps_by_name(cluster)["fit"]["HadoopJarStep"]["Args"])
    # 224 twice would be a duplicate Args item: the second one is written as one --flag=value token
    assert args[7:] == [
        "--input", f"s3://{BUCKET}/data/Training",
        "--output", f"s3://{BUCKET}/runs/2026-11-21a/fit",
        "--weights", "imagenet",
        "--components", "224",
        "--image-size=224",
        "--features-store", f"s3://{BUCKET}/features",
    ]  # fmt: skip


# --- network ----------------------------------------------------------------------------------------------


def test_network(template: Template):
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::Subnet", 2)
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    template.resource_count_is("AWS::EC2::FlowLog", 1)
    template.has_resource_properties("AWS::EC2::VPC", {"Tags": Match.array_with([EMR_TAG])})
    template.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL", "ResourceType": "VPC"})
    for subnet in template.find_resources("AWS::EC2::Subnet").values():
        assert EMR_TAG in subnet["Properties"]["Tags"]
    private_route_table = Capture()
    template.has_resource_properties(
        "AWS::EC2::Route",
        {
            "RouteTableId": {"Ref": private_route_table},
            "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": {"Ref": Match.string_like_regexp("NATGateway")},
        },
    )
    assert private_route_table.as_string().startswith("NetworkVpcEmrSubnet")
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "VpcEndpointType": "Gateway",
            "ServiceName": {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".s3"]]},
            "RouteTableIds": [{"Ref": private_route_table.as_string()}],
        },
    )


def test_emr_subnet_is_private(template: Template, cluster: dict[str, Any]):
    subnet = template.find_resources("AWS::EC2::Subnet")[cluster["Instances"]["Ec2SubnetId"]["Ref"]]
    assert subnet["Properties"]["MapPublicIpOnLaunch"] is False


# --- security groups --------------------------------------------------------------------------------------


def only_group(template: Template, name: str) -> str:
    (logical_id,) = [
        k for k in template.find_resources("AWS::EC2::SecurityGroup") if k.startswith(f"SecurityGroups{name}")
    ]
    return logical_id


def test_security_groups_have_exactly_the_documented_rules(template: Template):
    groups = {only_group(template, n): n for n in ("Primary", "Core", "ServiceAccess")}
    template.resource_count_is("AWS::EC2::SecurityGroup", 3)  # EMR must not create default groups

    def group(value: dict[str, Any]) -> str:
        return groups[value["Fn::GetAtt"][0]]

    ingress = {
        (group(r["Properties"]["GroupId"]), group(r["Properties"]["SourceSecurityGroupId"]),
         r["Properties"]["IpProtocol"], r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
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
    template.resource_count_is("AWS::EC2::SecurityGroupIngress", len(expected))

    egress = {
        (group(r["Properties"]["GroupId"]), group(r["Properties"]["DestinationSecurityGroupId"]),
         r["Properties"]["IpProtocol"], r["Properties"]["FromPort"], r["Properties"]["ToPort"])
        for r in template.find_resources("AWS::EC2::SecurityGroupEgress").values()
    }  # fmt: skip
    assert egress == {
        ("ServiceAccess", "Primary", "tcp", 8443, 8443),
        ("ServiceAccess", "Core", "tcp", 8443, 8443),
    }

    for logical_id, name in groups.items():
        props = template.find_resources("AWS::EC2::SecurityGroup")[logical_id]["Properties"]
        assert "SecurityGroupIngress" not in props
        assert EMR_TAG in props["Tags"]
        assert props["GroupDescription"].startswith("EMR ")
        inline_egress = props.get("SecurityGroupEgress", [])
        if name == "ServiceAccess":
            assert inline_egress == []  # only the two 8443 rules above
        else:  # nodes reach EMR, S3, PyPI and the weights through the NAT and the S3 endpoint
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
    assert len(code_objects) == 4
    assert {arn.rsplit(".", 1)[1] for arn in code_objects} == {"zip", "py", "sh", "txt"}
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
    assert any(d.startswith("NetworkVpcEmrSubnet1DefaultRoute") for d in depends_on)  # the NAT route
    assert any(d.startswith("NetworkVpcS3") for d in depends_on)  # the S3 gateway endpoint


def test_resource_counts(template: Template):
    counts = {
        "AWS::EMR::Cluster": 1,
        "AWS::EMR::SecurityConfiguration": 1,
        "AWS::KMS::Key": 1,
        "AWS::IAM::InstanceProfile": 1,
        "AWS::EC2::SecurityGroup": 3,
        "AWS::EC2::SecurityGroupIngress": 15,
        "AWS::EC2::SecurityGroupEgress": 2,
        "AWS::EC2::VPCEndpoint": 1,
        "Custom::SecurityGroupRuleRevoker": 1,
        "AWS::Lambda::Function": 2,  # the revoker, and CDK's default-security-group restriction
        "AWS::EMR::Step": 0,  # steps are part of the cluster
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
