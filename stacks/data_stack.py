"""FruitsData: the stateful stack. The data bucket (data/, features/, runs/, emr-logs/) and its access-log
bucket."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Size, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from spark_job.contract.names import DATA_PREFIX, FEATURES_PREFIX, LOGS_PREFIX, RUNS_PREFIX
from stacks.config import AppConfig

# Construct id of the data bucket: its logical id must never change (a new one replaces the bucket).
DATA_BUCKET_ID = "DataBucket"
DATA_BUCKET_LOGICAL_ID = "DataBucketE3889A50"  # pinned by tests/infra
_UPLOAD_READ = (
    "CDK's BucketDeployment grant: read the uploadDir zip it stages in the CDK assets bucket (asset keys "
    "are content hashes)"
)
_UPLOAD_WRITE = (
    "CDK's BucketDeployment grant: write the uploaded files into the data bucket (prune=False: it never "
    "deletes under data/)"
)
# s3:// is S3A since EMR 7.10: its multipart uploads also list parts (AWS's example EC2-role policy has both
# multipart list actions: https://docs.aws.amazon.com/emr/latest/ManagementGuide/emr-iam-role-for-ec2.html).
RUNS_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]


class DataStack(Stack):
    """Bucket layout: data/ (input images), features/ (the features store, kept across runs: no rule
    expires it), runs/<run-id>/ (job outputs), emr-logs/ (cluster logs).

    Versioned: an overwritten or deleted object keeps its previous version for `noncurrentVersionDays`
    (default 30), then S3 expires it. Retained on `cdk destroy` by default; `-c retainData=false` makes
    destroy empty (every version) and delete both buckets.
    `-c uploadDir=path` uploads a local dataset into data/ during deploy (never deletes anything there).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        auto_delete = not config.retain_data

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal,
            auto_delete_objects=auto_delete,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs", expiration=Duration.days(365))],
        )
        # No AwsSolutions-S1 acknowledgement here: cdk-nag's S1 already passes a bucket that is the server
        # access log target of another bucket in the stack (a log bucket is not logged into itself), and an
        # acknowledgement nothing needs would hide a real finding later (tests/infra/test_nag.py).
        self.bucket = s3.Bucket(
            self,
            DATA_BUCKET_ID,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="data-bucket/",
            removal_policy=removal,
            # CDK's auto-delete handler lists and deletes object versions, so a versioned bucket empties.
            auto_delete_objects=auto_delete,
            # Months of photos, features and runs: a mistaken overwrite or delete is recoverable (README).
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(7)
                ),
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(config.noncurrent_version_days),
                    # Spark's temporary files leave delete markers with no version behind: drop those.
                    expired_object_delete_marker=True,
                ),
            ],
        )

        if config.upload_dir is not None:
            self._upload(config.upload_dir)

        self.node_access_policy = self._node_access_policy(read_data_prefix=config.input_uri is None)

        CfnOutput(self, "BucketName", value=self.bucket.bucket_name, description="Data bucket")

    def _upload(self, upload_dir: Path) -> None:
        """Copy a local dataset into data/ at deploy (CDK's Lambda-backed BucketDeployment)."""
        deployment = s3_deployment.BucketDeployment(
            self,
            "UploadData",
            sources=[s3_deployment.Source.asset(str(upload_dir))],
            destination_bucket=self.bucket,
            destination_key_prefix=DATA_PREFIX,
            prune=False,  # never delete what is already under data/
            retain_on_delete=True,
            # /tmp holds the zipped dataset and its extraction: Fruits-360 needs more than the default.
            memory_limit=2048,
            ephemeral_storage_size=Size.gibibytes(10),
        )
        role_findings = {
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]": "CDK's BucketDeployment handler writes its own CloudWatch logs "
            "with the AWS basic execution policy; the function runs only during deploy",
            "AwsSolutions-IAM5[Action::s3:GetBucket*]": _UPLOAD_READ,
            "AwsSolutions-IAM5[Action::s3:GetObject*]": _UPLOAD_READ,
            "AwsSolutions-IAM5[Action::s3:List*]": _UPLOAD_READ,
            f"AwsSolutions-IAM5[Resource::arn:{self.partition}:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-"
            f"{self.region}/*]": _UPLOAD_READ,
            "AwsSolutions-IAM5[Action::s3:Abort*]": _UPLOAD_WRITE,
            "AwsSolutions-IAM5[Action::s3:DeleteObject*]": _UPLOAD_WRITE,
            f"AwsSolutions-IAM5[Resource::<{DATA_BUCKET_LOGICAL_ID}.Arn>/*]": _UPLOAD_WRITE,
        }
        Validations.of(deployment.handler_role).acknowledge(
            *(Acknowledgment(id=rule, reason=reason) for rule, reason in role_findings.items())
        )
        # The handler is a stack-level singleton (shared by every BucketDeployment of the stack).
        (handler,) = [c for c in self.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")]
        Validations.of(handler).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="The runtime of CDK's BucketDeployment handler is chosen by aws-cdk-lib, not by this "
                "app; it runs only during deploy to copy uploadDir into data/",
            )
        )

    def _node_access_policy(self, *, read_data_prefix: bool) -> iam.ManagedPolicy:
        """What the EMR nodes may do in this bucket; attached to their role by FruitsPipeline.

        Read data/ (when it holds the input), read/write runs/, write emr-logs/. Kept next to the bucket
        so the prefixes and the grants live in one place.
        """
        bucket = self.bucket
        statements = [
            # EMRFS probes prefixes with and without a trailing slash: listing is not prefix-limited.
            # S3A lists the bucket's pending multipart uploads (a bucket-level action) when committing.
            iam.PolicyStatement(
                sid="ListDataBucket",
                actions=["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                resources=[bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="ReadWriteRuns",
                actions=RUNS_ACTIONS,
                resources=[bucket.arn_for_objects(f"{RUNS_PREFIX}*")],
            ),
            # The features store: runs append, read it back; `store compact` rewrites and deletes.
            iam.PolicyStatement(
                sid="ReadWriteFeaturesStore",
                actions=RUNS_ACTIONS,
                resources=[bucket.arn_for_objects(f"{FEATURES_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="WriteEmrLogs",
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{LOGS_PREFIX}*")],
            ),
        ]
        acks = {
            RUNS_PREFIX: "runs/ holds one folder per run id; Spark writes, reads back and cleans up its "
            "temporary files under it",
            FEATURES_PREFIX: "features/ is the features store: one Parquet dataset per featurizer key, "
            "appended by every run in its own run_id= folder (Spark's committer writes and cleans up "
            "temporary files under it)",
            LOGS_PREFIX: "EMR pushes logs under emr-logs/<cluster-id>/; the cluster id exists only at launch",
        }
        if read_data_prefix:
            statements.append(
                iam.PolicyStatement(
                    sid="ReadInput",
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{DATA_PREFIX}*")],
                )
            )
            acks[DATA_PREFIX] = (
                "the job reads every image under data/<split>/<class>/ (s3:GetObject only, no write)"
            )
        policy = iam.ManagedPolicy(
            self,
            "ClusterNodeDataAccess",
            description="EMR nodes of FruitsPipeline: read data/, read/write features/ and runs/, "
            "write emr-logs/",
            statements=statements,
        )
        Validations.of(policy).acknowledge(
            *(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::<{DATA_BUCKET_LOGICAL_ID}.Arn>/{prefix}*]", reason=reason
                )
                for prefix, reason in acks.items()
            )
        )
        return policy
