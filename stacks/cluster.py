"""The transient EMR cluster: bootstrap action, PySpark on python3.11, the `fit` then `transform` steps; one
definition, rendered as the stack's AWS::EMR::Cluster and as the RunJobFlow request of later runs. What
differs between release lines (applications, interpreter, classifications) comes from the label's
ReleaseLine (stacks/release_lines.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aws_cdk import Acknowledgment, CfnTag, Validations
from aws_cdk import aws_emr as emr
from constructs import Construct

from spark_job.contract.names import STEP_ACTION_ON_FAILURE
from stacks import instance_types as types_table
from stacks.config import AppConfig
from stacks.release_lines import ReleaseLine
from stacks.run_contract import RUN_ID_PLACEHOLDER, RUN_ID_TAG, STACK_TAG, cluster_name
from stacks.spark_settings import SPARK_ENV_EXPORTS, ExecutorSizing, spark_defaults, spark_env_exports

STEP_JAR = "command-runner.jar"
# Spot provisioning: price-capacity-optimized picks the pools least likely to be interrupted at a low price
# (EMR's recommended strategy); if no Spot capacity comes within the timeout, EMR provisions the task fleet
# on-demand instead of failing (it applies while provisioning only).
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-emr-instancefleetconfig-spotprovisioningspecification.html
SPOT_ALLOCATION_STRATEGY = "price-capacity-optimized"
SPOT_TIMEOUT_ACTION = "SWITCH_TO_ON_DEMAND"
# The YARN application master (and so the driver, in cluster deploy mode) on core nodes only: EMR 6.x and
# later turn YARN node labels off, so the AM could land on a Spot task node and die with it. These are the
# EMR 5.x defaults, which put AM containers on the CORE label only (executors go anywhere):
# https://repost.aws/knowledge-center/emr-configure-node-labeling-yarn
AM_ON_CORE_YARN_SITE = {
    "yarn.node-labels.enabled": "true",
    "yarn.node-labels.am.default-node-label-expression": "CORE",
}
# On-demand fleets: lowest-price picks the cheapest listed type that has capacity.
ON_DEMAND_ALLOCATION_STRATEGY = "lowest-price"


@dataclass(frozen=True)
class StepInputs:
    """Everything the two steps' command lines are made of (S3 URLs may be CDK tokens)."""

    package_url: str  # --py-files: zip whose root holds spark_job/
    entry_url: str  # spark-submit's main file
    input_uri: str  # <input>/Training and <input>/Test
    run_uri: str  # s3://<bucket>/runs/<run-id> (no trailing slash)
    weights: str
    variance_target: float | None
    components: int | None
    image_size: int
    features_store_uri: str | None = None  # --features-store: s3://<data bucket>/features


def _unique_args(head: Sequence[str], options: Sequence[tuple[str, str]]) -> list[str]:
    """`head` then `--flag value` pairs, one token per element.

    CloudFormation's schema wants unique Args items (cfn-lint E3037): a value equal to an earlier token
    (e.g. `--components 224 --image-size 224`) is written as one `--flag=value` token, which argparse reads
    the same way.
    """
    args = list(head)
    for flag, value in options:
        if value in args:
            args.append(f"{flag}={value}")
        else:
            args.extend([flag, value])
    return args


def spark_submit_head(inputs: StepInputs, mode: str) -> list[str]:
    return [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        "--py-files",
        inputs.package_url,
        inputs.entry_url,
        mode,
    ]


def fit_args(inputs: StepInputs) -> list[str]:
    reduction = (
        ("--components", str(inputs.components))
        if inputs.components is not None
        else ("--variance", repr(inputs.variance_target))
    )
    return _unique_args(
        spark_submit_head(inputs, "fit"),
        [
            ("--input", f"{inputs.input_uri}/Training"),
            ("--output", f"{inputs.run_uri}/fit"),
            ("--weights", inputs.weights),
            reduction,
            ("--image-size", str(inputs.image_size)),
            *_store_option(inputs),
        ],
    )


def transform_args(inputs: StepInputs) -> list[str]:
    return _unique_args(
        spark_submit_head(inputs, "transform"),
        [
            ("--model", f"{inputs.run_uri}/fit/model"),
            ("--input", f"{inputs.input_uri}/Test"),
            ("--output", f"{inputs.run_uri}/transform"),
            ("--weights", inputs.weights),
            *_store_option(inputs),
        ],
    )


def _store_option(inputs: StepInputs) -> list[tuple[str, str]]:
    return [("--features-store", inputs.features_store_uri)] if inputs.features_store_uri else []


def _step(name: str, args: list[str]) -> emr.CfnCluster.StepConfigProperty:
    return emr.CfnCluster.StepConfigProperty(
        name=name,
        action_on_failure=STEP_ACTION_ON_FAILURE,
        hadoop_jar_step=emr.CfnCluster.HadoopJarStepConfigProperty(jar=STEP_JAR, args=args),
    )


def spark_configurations(
    defaults: Mapping[str, str], env: Mapping[str, str] = SPARK_ENV_EXPORTS
) -> list[emr.CfnCluster.ConfigurationProperty]:
    return [
        emr.CfnCluster.ConfigurationProperty(
            classification="spark-env",
            configurations=[
                emr.CfnCluster.ConfigurationProperty(
                    classification="export", configuration_properties=dict(env)
                )
            ],
        ),
        emr.CfnCluster.ConfigurationProperty(
            classification="spark-defaults", configuration_properties=dict(defaults)
        ),
        emr.CfnCluster.ConfigurationProperty(
            classification="yarn-site", configuration_properties=dict(AM_ON_CORE_YARN_SITE)
        ),
    ]


def classifications(configurations: Sequence[Any]) -> set[str]:
    """Every classification in `configurations` (emr.CfnCluster.ConfigurationProperty), nested ones included
    but spark-env's `export`, which is no classification of its own: EMR nests it under spark-env."""
    found: set[str] = set()
    for configuration in configurations:
        found.add(configuration.classification)
        nested = [c for c in configuration.configurations or [] if c.classification != "export"]
        found |= classifications(nested)
    return found


def line_configurations(
    line: ReleaseLine, sizing: ExecutorSizing, region: str
) -> list[emr.CfnCluster.ConfigurationProperty]:
    """The cluster's configurations on `line`: its interpreter, checked against its classifications (a
    classification the release does not know fails the cluster at launch, after its instances started)."""
    configurations = spark_configurations(
        spark_defaults(sizing, region, line.python), spark_env_exports(line.python)
    )
    unknown = classifications(configurations) - line.classifications
    if unknown:
        raise ValueError(
            f"classifications {sorted(unknown)} are not checked for {line.name} ({line.release_page})"
        )
    return configurations


def _type_configs(
    names: Sequence[str], sizing: ExecutorSizing | None
) -> list[emr.CfnCluster.InstanceTypeConfigProperty]:
    """The fleet's types; a worker type's weighted capacity is its executor slots (primary: 1 each)."""
    return [
        emr.CfnCluster.InstanceTypeConfigProperty(
            instance_type=name,
            weighted_capacity=1
            if sizing is None
            else sizing.weighted_capacity(types_table.INSTANCE_TYPES[name]),
        )
        for name in names
    ]


def _on_demand_spec() -> emr.CfnCluster.InstanceFleetProvisioningSpecificationsProperty:
    return emr.CfnCluster.InstanceFleetProvisioningSpecificationsProperty(
        on_demand_specification=emr.CfnCluster.OnDemandProvisioningSpecificationProperty(
            allocation_strategy=ON_DEMAND_ALLOCATION_STRATEGY
        )
    )


def instance_fleets(config: AppConfig) -> dict[str, emr.CfnCluster.InstanceFleetConfigProperty]:
    """primary (on-demand, 1), core (on-demand: it hosts the application master, which runs the driver in
    cluster mode, so it must never be reclaimed) and, when taskCapacity > 0, task (Spot by default)."""
    sizing = config.executor_sizing
    fleets = {
        "primary": emr.CfnCluster.InstanceFleetConfigProperty(
            name="Primary",
            target_on_demand_capacity=1,
            instance_type_configs=_type_configs(config.primary_types, None),
            launch_specifications=_on_demand_spec(),
        ),
        "core": emr.CfnCluster.InstanceFleetConfigProperty(
            name="Core",
            target_on_demand_capacity=config.core_capacity,
            instance_type_configs=_type_configs(config.core_types, sizing),
            launch_specifications=_on_demand_spec(),
        ),
    }
    if config.task_capacity:
        spot = config.task_market == "spot"
        fleets["task"] = emr.CfnCluster.InstanceFleetConfigProperty(
            name="Task",
            target_spot_capacity=config.task_capacity if spot else None,
            target_on_demand_capacity=None if spot else config.task_capacity,
            instance_type_configs=_type_configs(config.task_types, sizing),
            launch_specifications=emr.CfnCluster.InstanceFleetProvisioningSpecificationsProperty(
                spot_specification=emr.CfnCluster.SpotProvisioningSpecificationProperty(
                    allocation_strategy=SPOT_ALLOCATION_STRATEGY,
                    timeout_action=SPOT_TIMEOUT_ACTION,
                    timeout_duration_minutes=types_table.SPOT_TIMEOUT_MINUTES,
                )
            )
            if spot
            else _on_demand_spec(),
        )
    return fleets


@dataclass(frozen=True)
class ClusterNetwork:
    subnet_ids: Sequence[str]  # one per AZ: EMR launches the fleets in the AZ that has the capacity
    primary_group_id: str
    core_group_id: str
    service_access_group_id: str


# Lets AmazonEMRServicePolicy_v2 act on a resource: on the cluster (every run's), and on the VPC, the
# cluster's subnets and its three security groups (stacks/pipeline_stack.py), nothing else.
EMR_MANAGED_TAG = ("for-use-with-amazon-emr-managed-policies", "true")
# RunJobFlow's fleet types for CloudFormation's MasterInstanceFleet, CoreInstanceFleet, TaskInstanceFleets.
FLEET_TYPES = {"primary": "MASTER", "core": "CORE", "task": "TASK"}


@dataclass(frozen=True)
class ClusterDefinition:
    """A run's cluster, once: the typed AWS::EMR::Cluster properties, rendered two ways.

    - `cfn_properties(run_id)`: the stack's AWS::EMR::Cluster (the run `cdk deploy` starts);
    - `run_job_flow_request(run_id)`: the EMR RunJobFlow request of the same cluster, which the stack
      publishes for `make run` and the schedule (stacks/run_launch.py).

    Both read the same property objects; runs differ by the run id alone: the name, the RUN_ID_TAG tag and
    the steps' output folder (StepInputs.run_uri ends with RUN_ID_PLACEHOLDER here). Values may be CDK tokens.
    """

    release_label: str
    applications: tuple[emr.CfnCluster.ApplicationProperty, ...]
    instances: emr.CfnCluster.JobFlowInstancesConfigProperty
    fleets: Mapping[str, emr.CfnCluster.InstanceFleetConfigProperty]  # the ones in `instances`, by role
    job_flow_role: str  # the instance profile's name
    service_role: str
    security_configuration: str
    log_uri: str
    ebs_root_volume_size: int
    auto_termination_policy: emr.CfnCluster.AutoTerminationPolicyProperty
    bootstrap_actions: tuple[emr.CfnCluster.BootstrapActionConfigProperty, ...]
    configurations: tuple[emr.CfnCluster.ConfigurationProperty, ...]
    step_inputs: StepInputs
    stack_tags: tuple[tuple[str, str], ...]  # every run's: the EMR-managed tag, the stack's name
    visible_to_all_users: bool = True

    @classmethod
    def build(
        cls,
        *,
        config: AppConfig,
        stack_name: str,
        network: ClusterNetwork,
        instance_profile_name: str,
        service_role_arn: str,
        security_configuration: str,
        log_uri: str,
        bootstrap_script_url: str,
        bootstrap_args: list[str],  # the lock's and the wheelhouse's S3 URLs
        steps: StepInputs,  # run_uri: s3://<bucket>/runs/RUN_ID_PLACEHOLDER
    ) -> ClusterDefinition:
        if not steps.run_uri.endswith("/" + RUN_ID_PLACEHOLDER):
            raise ValueError(f"run_uri must end with /{RUN_ID_PLACEHOLDER}: {steps.run_uri}")
        fleets = instance_fleets(config)
        line = config.release_line
        return cls(
            release_label=config.release_label,
            applications=tuple(emr.CfnCluster.ApplicationProperty(name=name) for name in line.applications),
            instances=emr.CfnCluster.JobFlowInstancesConfigProperty(
                ec2_subnet_ids=list(network.subnet_ids),
                emr_managed_master_security_group=network.primary_group_id,
                emr_managed_slave_security_group=network.core_group_id,
                service_access_security_group=network.service_access_group_id,
                master_instance_fleet=fleets["primary"],
                core_instance_fleet=fleets["core"],
                task_instance_fleets=[fleets["task"]] if "task" in fleets else None,
                keep_job_flow_alive_when_no_steps=False,
                termination_protected=False,
            ),
            fleets=fleets,
            job_flow_role=instance_profile_name,
            service_role=service_role_arn,
            security_configuration=security_configuration,
            log_uri=log_uri,
            ebs_root_volume_size=config.root_volume_size_gib,
            auto_termination_policy=emr.CfnCluster.AutoTerminationPolicyProperty(
                idle_timeout=config.idle_timeout_seconds
            ),
            bootstrap_actions=(
                emr.CfnCluster.BootstrapActionConfigProperty(
                    name="install-python-deps",
                    script_bootstrap_action=emr.CfnCluster.ScriptBootstrapActionConfigProperty(
                        path=bootstrap_script_url, args=bootstrap_args
                    ),
                ),
            ),
            configurations=tuple(line_configurations(line, config.executor_sizing, config.region)),
            step_inputs=steps,
            stack_tags=(EMR_MANAGED_TAG, (STACK_TAG, stack_name)),
        )

    def steps(self, run_id: str) -> list[emr.CfnCluster.StepConfigProperty]:
        inputs = replace(
            self.step_inputs, run_uri=self.step_inputs.run_uri.replace(RUN_ID_PLACEHOLDER, run_id)
        )
        return [_step("fit", fit_args(inputs)), _step("transform", transform_args(inputs))]

    def tags(self, run_id: str) -> list[CfnTag]:
        pairs = sorted({*self.stack_tags, (RUN_ID_TAG, run_id)})  # sorted by key, as CloudFormation renders
        return [CfnTag(key=key, value=value) for key, value in pairs]

    def cfn_properties(self, run_id: str) -> dict[str, Any]:
        """Keyword arguments of emr.CfnCluster for the run `run_id`."""
        return {
            "name": cluster_name(run_id),
            "release_label": self.release_label,
            "applications": list(self.applications),
            "instances": self.instances,
            "job_flow_role": self.job_flow_role,
            "service_role": self.service_role,
            "security_configuration": self.security_configuration,
            "log_uri": self.log_uri,
            "visible_to_all_users": self.visible_to_all_users,
            "ebs_root_volume_size": self.ebs_root_volume_size,
            "auto_termination_policy": self.auto_termination_policy,
            "bootstrap_actions": list(self.bootstrap_actions),
            "configurations": list(self.configurations),
            "steps": self.steps(run_id),
            "tags": self.tags(run_id),
        }

    def run_job_flow_request(self, run_id: str) -> dict[str, Any]:
        """The EMR RunJobFlow request (API member names) that starts the same cluster for `run_id`.

        https://docs.aws.amazon.com/emr/latest/APIReference/API_RunJobFlow.html: the same members as the
        CloudFormation properties but for the fleets (one InstanceFleets list, each with its
        InstanceFleetType) and a configuration's properties (Properties, not ConfigurationProperties).
        tests/infra/test_run_request.py compares the two renderings field by field.
        """
        instances = self.instances
        fleets = [
            _api_fleet(self.fleets[role], FLEET_TYPES[role]) for role in FLEET_TYPES if role in self.fleets
        ]
        return _compact(
            {
                "Name": cluster_name(run_id),
                "LogUri": self.log_uri,
                "ReleaseLabel": self.release_label,
                "Instances": _compact(
                    {
                        "InstanceFleets": fleets,
                        "Ec2SubnetIds": list(instances.ec2_subnet_ids or []),
                        "EmrManagedMasterSecurityGroup": instances.emr_managed_master_security_group,
                        "EmrManagedSlaveSecurityGroup": instances.emr_managed_slave_security_group,
                        "ServiceAccessSecurityGroup": instances.service_access_security_group,
                        "KeepJobFlowAliveWhenNoSteps": instances.keep_job_flow_alive_when_no_steps,
                        "TerminationProtected": instances.termination_protected,
                    }
                ),
                "Steps": [_api_step(step) for step in self.steps(run_id)],
                "BootstrapActions": [_api_bootstrap_action(action) for action in self.bootstrap_actions],
                "Applications": [
                    _compact({"Name": app.name, "Version": app.version}) for app in self.applications
                ],
                "Configurations": [_api_configuration(c) for c in self.configurations],
                "VisibleToAllUsers": self.visible_to_all_users,
                "JobFlowRole": self.job_flow_role,
                "ServiceRole": self.service_role,
                "SecurityConfiguration": self.security_configuration,
                "EbsRootVolumeSize": self.ebs_root_volume_size,
                "AutoTerminationPolicy": {"IdleTimeout": self.auto_termination_policy.idle_timeout},
                "Tags": [{"Key": tag.key, "Value": tag.value} for tag in self.tags(run_id)],
            }
        )


# The CloudFormation property objects in RunJobFlow's shape. Each converter reads the fields this app sets;
# a field set on the CloudFormation side only would make the two renderings differ, which the field-by-field
# test reports.


def _compact(members: dict[str, Any]) -> dict[str, Any]:
    """RunJobFlow leaves an unset member out (it has no null)."""
    return {key: value for key, value in members.items() if value is not None}


def _api_configuration(configuration: Any) -> dict[str, Any]:
    nested = configuration.configurations
    return _compact(
        {
            "Classification": configuration.classification,
            "Configurations": [_api_configuration(c) for c in nested] if nested else None,
            "Properties": dict(configuration.configuration_properties)
            if configuration.configuration_properties
            else None,
        }
    )


def _api_fleet(fleet: Any, fleet_type: str) -> dict[str, Any]:
    launch = fleet.launch_specifications
    spot = launch.spot_specification if launch else None
    on_demand = launch.on_demand_specification if launch else None
    return _compact(
        {
            "Name": fleet.name,
            "InstanceFleetType": fleet_type,
            "TargetOnDemandCapacity": fleet.target_on_demand_capacity,
            "TargetSpotCapacity": fleet.target_spot_capacity,
            "InstanceTypeConfigs": [
                _compact({"InstanceType": c.instance_type, "WeightedCapacity": c.weighted_capacity})
                for c in fleet.instance_type_configs
            ],
            "LaunchSpecifications": _compact(
                {
                    "OnDemandSpecification": {"AllocationStrategy": on_demand.allocation_strategy}
                    if on_demand
                    else None,
                    "SpotSpecification": _compact(
                        {
                            "AllocationStrategy": spot.allocation_strategy,
                            "TimeoutAction": spot.timeout_action,
                            "TimeoutDurationMinutes": spot.timeout_duration_minutes,
                        }
                    )
                    if spot
                    else None,
                }
            )
            if launch
            else None,
        }
    )


def _api_step(step: Any) -> dict[str, Any]:
    jar_step = step.hadoop_jar_step
    return {
        "Name": step.name,
        "ActionOnFailure": step.action_on_failure,
        "HadoopJarStep": _compact({"Jar": jar_step.jar, "Args": list(jar_step.args or []) or None}),
    }


def _api_bootstrap_action(action: Any) -> dict[str, Any]:
    script = action.script_bootstrap_action
    return {
        "Name": action.name,
        "ScriptBootstrapAction": _compact({"Path": script.path, "Args": list(script.args or []) or None}),
    }


class EmrCluster(Construct):
    """The stack's AWS::EMR::Cluster: the definition's cluster for the deploy's run id."""

    def __init__(
        self, scope: Construct, construct_id: str, *, definition: ClusterDefinition, run_id: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.resource = emr.CfnCluster(self, "Resource", **definition.cfn_properties(run_id))
        Validations.of(self.resource).acknowledge(
            Acknowledgment(
                id="AwsSolutions-EMR4",
                reason="The security configuration enables local disk and EBS encryption (AwsKms, rotating "
                "key) under EncryptionConfiguration.AtRestEncryptionConfiguration, where EMR requires it; "
                "the rule looks for it at the top level of the document",
            ),
            Acknowledgment(
                id="AwsSolutions-EMR5",
                reason="In-transit encryption needs a PEM certificate bundle for the nodes' private DNS "
                "names; the nodes talk only inside one private subnet behind the EMR security groups, and "
                "to S3 over TLS",
            ),
            Acknowledgment(
                id="AwsSolutions-EMR6",
                reason="Batch-only cluster in a private subnet: no key pair and no SSH by design, so no "
                "Kerberos realm is needed; access is through EMR steps and IAM",
            ),
        )

    @property
    def cluster_id(self) -> str:
        return self.resource.ref
