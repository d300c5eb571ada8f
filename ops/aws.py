"""boto3 session, CloudFormation outputs and the translation of AWS errors into OpsError."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    TokenRetrievalError,
)

from ops.config import OpsConfig, OpsError

log = logging.getLogger(__name__)

_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


def make_session(config: OpsConfig) -> boto3.Session:
    """A session for the configured profile and region (AWS_ENDPOINT_URL is honoured by boto3 itself)."""
    try:
        return boto3.Session(profile_name=config.profile, region_name=config.region)
    except ProfileNotFound as exc:
        raise OpsError(f"AWS profile not found: {config.profile} (see ~/.aws/config)") from exc


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    """Turn credential, permission and connection failures into a one-line OpsError."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise OpsError(
            "no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), "
            "or run `aws configure` / `aws sso login`"
        ) from exc
    except TokenRetrievalError as exc:
        raise OpsError(f"AWS SSO token expired or missing: run `aws sso login` ({exc})") from exc
    except NoRegionError as exc:
        raise OpsError("no AWS region: pass --region or set AWS_REGION") from exc
    except EndpointConnectionError as exc:
        raise OpsError(f"cannot reach AWS: {exc}") from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in _EXPIRED:
            raise OpsError(f"AWS credentials rejected ({code}): refresh them and retry") from exc
        if code in _DENIED:
            raise OpsError(f"access denied by AWS: {message}") from exc
        raise OpsError(f"AWS {exc.operation_name} failed: {code}: {message}") from exc
    except BotoCoreError as exc:
        raise OpsError(f"AWS call failed: {exc}") from exc


class Aws:
    """Clients for one session, plus the stack lookups every command needs."""

    def __init__(self, config: OpsConfig, session: boto3.Session | None = None, max_pool: int = 10) -> None:
        self.config = config
        self.session = session or make_session(config)
        self._client_config = Config(
            region_name=config.region,
            max_pool_connections=max_pool,
            retries={"mode": "standard", "max_attempts": 5},
        )
        self._clients: dict[str, Any] = {}
        self._outputs: dict[str, dict[str, str]] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=self._client_config)
        return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def emr(self) -> Any:
        return self.client("emr")

    def stack_outputs(self, stack_name: str | None = None, *, required: bool = True) -> dict[str, str]:
        """OutputKey -> OutputValue of a deployed stack; OpsError if it is not deployed."""
        name = stack_name or self.config.stack_name
        if name in self._outputs:
            return self._outputs[name]
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in exc.response.get("Error", {}).get("Message", ""):
                raise OpsError(
                    f"stack {name} is not deployed in {self.config.region} (deploy it with `make deploy`)"
                ) from exc
            raise
        stack = stacks[0]
        status = stack["StackStatus"]
        if status.endswith("_FAILED") or status in {"ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS"}:
            raise OpsError(f"stack {name} is in state {status}: fix or redeploy it (`make deploy`)")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if required and not outputs:
            raise OpsError(f"stack {name} has no outputs yet (state {status}): wait for the deploy to end")
        self._outputs[name] = outputs
        return outputs

    def output(self, key: str) -> str:
        outputs = self.stack_outputs()
        if key not in outputs:
            raise OpsError(f"stack {self.config.stack_name} has no output {key} (got {sorted(outputs)})")
        return outputs[key]

    def bucket(self) -> str:
        """The data bucket: --bucket, else the pipeline stack's BucketName, else the data stack's bucket."""
        if self.config.bucket:
            return self.config.bucket
        try:
            return self.output("BucketName")
        except OpsError as pipeline_error:
            try:
                return self._data_stack_bucket()
            except OpsError:
                raise OpsError(f"{pipeline_error}; or pass --bucket") from None

    def _data_stack_bucket(self) -> str:
        name = self.config.data_stack_name
        outputs = self.stack_outputs(name, required=False)
        if "BucketName" in outputs:
            return outputs["BucketName"]
        resources = self.client("cloudformation").describe_stack_resources(StackName=name)["StackResources"]
        buckets = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::S3::Bucket"]
        if len(buckets) != 1:
            raise OpsError(f"cannot tell the data bucket in stack {name} (found {buckets}): pass --bucket")
        return buckets[0]
