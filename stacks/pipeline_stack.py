"""FruitsPipeline: network, security groups, roles, KMS, security configuration, the cluster + steps, and the
RunJobFlow request of later runs (`make run`) with the optional schedule that starts them. What differs per
EMR release line (stacks/release_lines.py) is read from `config.release_line`."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Acknowledgment, Aws, CfnOutput, Stack, Tags, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from spark_job.contract.names import DATA_PREFIX, FEATURES_PREFIX, LOGS_PREFIX, RUNS_PREFIX
from stacks import packaging
from stacks.access import EmrRoles
from stacks.cluster import EMR_MANAGED_TAG, ClusterDefinition, ClusterNetwork, EmrCluster, StepInputs
from stacks.config import AppConfig
from stacks.job_code import JobCode, JobFiles
from stacks.network import Network
from stacks.run_contract import RUN_ID_PLACEHOLDER
from stacks.run_launch import RunLauncher
from stacks.runtime_deps import PLATFORMS, verify_wheelhouse
from stacks.security_configuration import EmrSecurityConfiguration
from stacks.security_groups import EmrSecurityGroups
from stacks.sg_rule_revoker import SecurityGroupRuleRevoker, order_teardown
from stacks.spark_settings import spark_defaults, spark_env_exports
from stacks.weights import CACHE_DIR, resolve_imagenet

_S3_URI = re.compile(r"^s3://([^/]+)(?:/(.*))?$")


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return match.group(1), (match.group(2) or "").strip("/")


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        data_bucket: s3.IBucket,
        data_access_policy: iam.IManagedPolicy,
        project_root: Path,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        line = config.release_line
        network = Network(self, "Network", egress=config.egress)
        groups = EmrSecurityGroups(
            self,
            "SecurityGroups",
            vpc=network.vpc,
            service_endpoint=line.service_endpoint,
            vpc_cidr=network.cidr,
        )
        if config.egress == "none":
            network.add_kms_endpoint([groups.primary, groups.core])
        platform = PLATFORMS[config.cluster_arch]
        wheelhouse = verify_wheelhouse(
            platform, config.wheelhouse_dir or platform.wheelhouse_dir(project_root), root=project_root
        )
        weights_file = (
            resolve_imagenet(
                config.image_size, local_file=config.weights_file, cache_dir=project_root / CACHE_DIR
            )
            if config.weights == "imagenet"
            else None
        )
        access = EmrRoles(self, "Access")
        if line.service_endpoint:  # EMR 8: its service endpoint in our VPC (stacks/security_groups.py)
            access.allow_emr_service_endpoint(
                vpc=network.vpc, subnets=network.emr_subnets, group=groups.service_access
            )
        security = EmrSecurityConfiguration(
            self, "Encryption", ec2_role=access.ec2_role, service_role=access.service_role
        )
        settings = {
            "config": config.job_fingerprint(),
            "sparkDefaults": spark_defaults(config.executor_sizing, config.region, line.python),
            "sparkEnv": spark_env_exports(line.python),
        }
        code = JobCode(
            self,
            "JobCode",
            files=JobFiles.under(project_root, config.cluster_arch),
            build_dir=project_root / packaging.BUILD_DIR,
            settings=settings,
            run_id=config.run_id,
            wheelhouse=wheelhouse,
            weights=weights_file,
        )
        self.run_id = code.run_id

        bucket_name = data_bucket.bucket_name
        runs_uri = f"s3://{bucket_name}/{RUNS_PREFIX.rstrip('/')}"
        run_uri = f"{runs_uri}/{self.run_id}"
        log_uri = f"s3://{bucket_name}/{LOGS_PREFIX}"
        input_uri = config.input_uri or f"s3://{bucket_name}/{DATA_PREFIX.rstrip('/')}"

        self._grant_node_access(access.ec2_role, code, data_access_policy)

        definition = ClusterDefinition.build(
            config=config,
            stack_name=self.stack_name,
            network=ClusterNetwork(
                subnet_ids=[subnet.subnet_id for subnet in network.emr_subnets],
                primary_group_id=groups.primary.security_group_id,
                core_group_id=groups.core.security_group_id,
                service_access_group_id=groups.service_access.security_group_id,
            ),
            instance_profile_name=access.instance_profile_name,
            service_role_arn=access.service_role.role_arn,
            security_configuration=security.name,
            log_uri=log_uri,
            bootstrap_script_url=code.bootstrap.s3_object_url,
            bootstrap_args=[code.lock.s3_object_url, code.wheelhouse.s3_object_url],
            steps=StepInputs(
                package_url=code.package.s3_object_url,
                entry_url=code.entry.s3_object_url,
                input_uri=input_uri,
                run_uri=f"{runs_uri}/{RUN_ID_PLACEHOLDER}",
                weights=code.weights.s3_object_url if code.weights is not None else config.weights,
                variance_target=config.variance_target,
                components=config.components,
                image_size=config.image_size,
                features_store_uri=f"s3://{bucket_name}/{FEATURES_PREFIX.rstrip('/')}",
            ),
        )
        self.definition = definition
        cluster = EmrCluster(self, "Cluster", definition=definition, run_id=self.run_id)
        # Later runs: the same definition as a RunJobFlow request (`make run`), and the optional schedule.
        runs = RunLauncher(
            self,
            "Runs",
            definition=definition,
            service_role=access.service_role,
            ec2_role=access.ec2_role,
            schedule=config.schedule,
        )
        # Created only once the nodes can work: roles with their policies (bootstrap downloads, PassRole),
        # the S3 endpoint (assets, repositories), the KMS endpoint (egress=none) or the NAT route (nat).
        # The schedule too: its first run must find them (and it is deleted before them).
        starters: list[Construct] = [cluster, *([runs.schedule] if runs.schedule is not None else [])]
        for starter in starters:
            for role in (access.ec2_role, access.service_role):
                starter.node.add_dependency(role.node.find_child("DefaultPolicy"))
            for subnet in network.emr_subnets:
                starter.node.add_dependency(subnet.internet_connectivity_established)
            starter.node.add_dependency(network.s3_endpoint)
            if network.kms_endpoint is not None:
                starter.node.add_dependency(network.kms_endpoint)

        revoker = SecurityGroupRuleRevoker(self, "SgRuleRevoker", groups=groups.all, vpc=network.vpc)
        for starter in starters:  # the schedule goes first on delete: no run starts while the rest goes
            order_teardown(revoker, groups.rule_resources() + network.rule_resources(), starter)

        # The cluster carries the tag in its definition (every run's cluster does).
        taggable = [
            network.vpc.node.default_child,
            *(subnet.node.default_child for subnet in network.emr_subnets),
            *(group.node.default_child for group in groups.all),
        ]
        for resource in taggable:
            assert resource is not None
            Tags.of(resource).add(*EMR_MANAGED_TAG)

        self.cluster = cluster
        region = Aws.REGION
        CfnOutput(self, "BucketName", value=bucket_name, description="Data bucket")
        CfnOutput(self, "ClusterId", value=cluster.cluster_id, description="EMR cluster of this run")
        CfnOutput(self, "RunId", value=self.run_id, description="Run id: outputs under runs/<run-id>/")
        CfnOutput(self, "RunOutputUri", value=f"{run_uri}/", description="This run's outputs")
        CfnOutput(self, "LogUri", value=log_uri, description="EMR logs: <LogUri><cluster-id>/")
        CfnOutput(
            self,
            "RunRequestParameter",
            value=runs.parameter.parameter_name,
            description="SSM parameter: the EMR RunJobFlow request `make run` starts a run with",
        )
        if runs.schedule is not None:
            CfnOutput(
                self,
                "RunSchedule",
                value=runs.schedule.schedule_name,
                description=f"EventBridge Scheduler schedule starting runs: {config.schedule} (UTC)",
            )
        CfnOutput(
            self,
            "ClusterConsoleUrl",
            value=f"https://{region}.console.aws.amazon.com/emr/home?region={region}"
            f"#/clusterDetails/{cluster.cluster_id}",
            description="The cluster in the EMR console",
        )

    def _grant_node_access(self, role: iam.IRole, code: JobCode, data_access: iam.IManagedPolicy) -> None:
        """Exactly what the nodes need in S3: the job code, the data bucket's prefixes (policy owned by
        FruitsData), an input bucket other than ours (read only) and S3-hosted weights (read only)."""
        code.grant_read(role)
        role.add_managed_policy(data_access)
        if self.config.input_uri is not None:
            other, prefix = split_s3_uri(self.config.input_uri)
            objects = f"arn:{self.partition}:s3:::{other}/{prefix + '/' if prefix else ''}*"
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="ListInputBucket",
                    actions=["s3:ListBucket"],
                    resources=[f"arn:{self.partition}:s3:::{other}"],
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(sid="ReadInput", actions=["s3:GetObject"], resources=[objects])
            )
            Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{objects}]",
                    reason=f"inputUri={self.config.input_uri}: the input is every image under that prefix",
                )
            )
        if self.config.weights.startswith("s3://"):
            weights_bucket, weights_key = split_s3_uri(self.config.weights)
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="ReadWeights",
                    actions=["s3:GetObject"],
                    resources=[f"arn:{self.partition}:s3:::{weights_bucket}/{weights_key}"],
                )
            )
