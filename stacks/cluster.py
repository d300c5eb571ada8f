"""The transient EMR cluster: bootstrap action, PySpark on python3.11, the `fit` then `transform` steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_emr as emr
from constructs import Construct

from spark_job.names import STEP_ACTION_ON_FAILURE
from stacks.config import AppConfig
from stacks.spark_settings import SPARK_DEFAULTS, SPARK_ENV_EXPORTS

STEP_JAR = "command-runner.jar"


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
    defaults: Mapping[str, str] = SPARK_DEFAULTS, env: Mapping[str, str] = SPARK_ENV_EXPORTS
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
    ]


@dataclass(frozen=True)
class ClusterNetwork:
    subnet_id: str
    primary_group_id: str
    core_group_id: str
    service_access_group_id: str


class EmrCluster(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        name: str,
        network: ClusterNetwork,
        instance_profile_name: str,
        service_role_arn: str,
        security_configuration: str,
        log_uri: str,
        bootstrap_script_url: str,
        requirements_url: str,
        steps: StepInputs,
    ) -> None:
        super().__init__(scope, construct_id)
        self.resource = emr.CfnCluster(
            self,
            "Resource",
            name=name,
            release_label=config.release_label,
            applications=[emr.CfnCluster.ApplicationProperty(name="Spark")],
            instances=emr.CfnCluster.JobFlowInstancesConfigProperty(
                ec2_subnet_id=network.subnet_id,
                emr_managed_master_security_group=network.primary_group_id,
                emr_managed_slave_security_group=network.core_group_id,
                service_access_security_group=network.service_access_group_id,
                master_instance_group=emr.CfnCluster.InstanceGroupConfigProperty(
                    name="Primary",
                    instance_count=1,
                    instance_type=config.primary_instance_type,
                    market="ON_DEMAND",
                ),
                core_instance_group=emr.CfnCluster.InstanceGroupConfigProperty(
                    name="Core",
                    instance_count=config.core_count,
                    instance_type=config.core_instance_type,
                    market="ON_DEMAND",
                ),
                keep_job_flow_alive_when_no_steps=False,
                termination_protected=False,
            ),
            job_flow_role=instance_profile_name,
            service_role=service_role_arn,
            security_configuration=security_configuration,
            log_uri=log_uri,
            visible_to_all_users=True,
            ebs_root_volume_size=config.root_volume_size_gib,
            auto_termination_policy=emr.CfnCluster.AutoTerminationPolicyProperty(
                idle_timeout=config.idle_timeout_seconds
            ),
            bootstrap_actions=[
                emr.CfnCluster.BootstrapActionConfigProperty(
                    name="install-python-deps",
                    script_bootstrap_action=emr.CfnCluster.ScriptBootstrapActionConfigProperty(
                        path=bootstrap_script_url, args=[requirements_url]
                    ),
                )
            ],
            configurations=spark_configurations(),
            steps=[_step("fit", fit_args(steps)), _step("transform", transform_args(steps))],
        )
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
