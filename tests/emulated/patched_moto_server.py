"""`moto_server` with eight gaps of moto 5.2.5 filled, the ones this app's deploy, runs and destroy hit.

Run as ``python -m tests.emulated.patched_moto_server -H 127.0.0.1 -p PORT`` (same options as
``moto_server``). Each patch makes the emulator do what CloudFormation does; none of them knows this app:

1. A stack created by executing a change set (how the CDK CLI deploys) gets its Outputs: moto builds the
   output map when the stack record is created with an empty template and never again.
2. ``Fn::GetStackOutput`` (CDK's weak cross-stack references) resolves to the other stack's output value.
3. ``AWS::EC2::RouteTable`` can be deleted by CloudFormation (with its subnet associations); moto has no
   delete for it, so the VPC (which moto refuses to delete while it has extra route tables) stays and
   `cdk destroy` fails with "The vpc ... has dependencies and cannot be deleted".
4. Change sets are looked up by name within their stack (the CLI names every stack's change set
   `cdk-deploy-change-set`), and one that is gone is reported as ChangeSetNotFoundException. moto ignores
   StackName, so updating a deployed stack (`cdk deploy FruitsData -c retainData=false`) deleted another
   stack's change set and the CLI waited forever for its own to be gone.
5. A stack update keeps an SSM-typed parameter with UsePreviousValue (the CLI does so for BootstrapVersion):
   moto hands back the value it resolved at creation and then looks that value up in SSM as if it were the
   parameter's path, which fails; a value that is not an SSM path is taken as the resolved one.
6. ``AWS::S3::Bucket`` gets its VersioningConfiguration and LifecycleConfiguration, on create and on
   update; and an update of a bucket with a generated name works: moto's CloudFormation applies only
   BucketEncryption and Tags, and its update reads properties["BucketName"] (KeyError without one, so
   a bucket flipped to retainData=false never got the tag CDK's auto-delete handler checks).
7. ``AWS::Scheduler::Schedule`` is created in (and deleted from) the EventBridge Scheduler backend: moto's
   CloudFormation skips the type with a warning, so a deployed schedule would exist nowhere.
8. EMR API calls reach the region they are signed for: moto's EMR takes the region from the host name only
   (elasticmapreduce.<region>.amazonaws.com) and files everything else under us-east-1, so behind
   AWS_ENDPOINT_URL the clusters RunJobFlow starts and the one CloudFormation created were in two regions.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult, BaseResponse, EmptyResult
from moto.ec2.models.route_tables import RouteTable
from moto.emr.responses import ElasticMapReduceResponse
from moto.s3.models import FakeBucket, s3_backends
from moto.scheduler.models import Schedule, scheduler_backends
from moto.server import main
from moto.ssm.models import ssm_backends
from moto.utilities.utils import get_partition

_apply = cfn_models.ChangeSet.apply
_clean_json = parsing.clean_json
_parse_ssm_parameter = parsing.ResourceMap.parse_ssm_parameter


def apply_with_outputs(self: Any) -> None:
    _apply(self)
    self.stack.template_dict = self.template_dict
    self.stack.output_map = self.stack._create_output_map()


def clean_json(resource_json: Any, resources_map: Any) -> Any:
    if isinstance(resource_json, dict) and "Fn::GetStackOutput" in resource_json:
        spec = _clean_json(resource_json["Fn::GetStackOutput"], resources_map)
        region = spec.get("Region") or resources_map._region_name
        backend = cfn_models.cloudformation_backends[resources_map._account_id][region]
        stack = backend.describe_stacks(spec["StackName"])[0]
        for output in stack.outputs or []:
            if output["OutputKey"] == spec["OutputName"]:
                return output["OutputValue"]
        raise ValidationError(message=f"Stack {spec['StackName']} has no output {spec['OutputName']}")
    return _clean_json(resource_json, resources_map)


@classmethod  # type: ignore[misc]
def delete_route_table(
    cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
) -> None:
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id][region_name]
    table = backend.route_tables.get(resource_name)
    if table is not None:
        table._associations.clear()
        backend.delete_route_table(resource_name)


class ChangeSetNotFoundException(CloudFormationError):
    code = "ChangeSetNotFoundException"


def change_set_id(backend: Any, name: str, stack_name: str | None) -> str:
    """The key moto stores the change set under: `name` is its ARN, or its name within the live stack
    `stack_name` (the newest such change set)."""
    if name in backend.change_sets:
        return name
    for key, change_set in reversed(backend.change_sets.items()):
        if (
            change_set.change_set_name == name
            and change_set.stack_id in backend.stacks  # not one of a deleted stack of the same name
            and stack_name in (None, change_set.stack_name, change_set.stack_id)
        ):
            return key
    raise ChangeSetNotFoundException(f"ChangeSet [{name}] does not exist")


def describe_change_set(self: Any) -> ActionResult:
    backend = self.cloudformation_backend
    key = change_set_id(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    return ActionResult(backend.describe_change_set(change_set_name=key))


def delete_change_set(self: Any) -> EmptyResult:
    backend = self.cloudformation_backend
    backend.delete_change_set(
        change_set_name=change_set_id(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    )
    return EmptyResult()


def execute_change_set(self: Any) -> EmptyResult:
    backend = self.cloudformation_backend
    stack_name = self._get_param("StackName")
    key = change_set_id(backend, self._get_param("ChangeSetName"), stack_name)
    backend.execute_change_set(change_set_name=key, stack_name=stack_name)
    return EmptyResult()


def parse_ssm_parameter(self: Any, value: str, value_type: str) -> str:
    ssm = ssm_backends[self._account_id][self._region_name]
    if not str(value).startswith("/") and ssm.get_parameter(value) is None:
        return value  # UsePreviousValue on update: already resolved
    return _parse_ssm_parameter(self, value, value_type)


_create_bucket = FakeBucket.create_from_cloudformation_json
_update_bucket = FakeBucket.update_from_cloudformation_json


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape (what moto's PutBucketLifecycle parses)."""
    api: dict[str, Any] = {
        "ID": rule.get("Id"),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = rule["ExpirationInDays"]
    if rule.get("ExpiredObjectDeleteMarker"):
        expiration["ExpiredObjectDeleteMarker"] = "true"
    if expiration:
        api["Expiration"] = expiration
    for key in ("NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"):
        if key in rule:
            api[key] = {k: str(v) for k, v in rule[key].items()}
    return api


def _bucket_configuration(bucket: Any, cloudformation_json: Any, account_id: str, region_name: str) -> None:
    properties = cloudformation_json.get("Properties", {})
    backend = s3_backends[account_id][get_partition(region_name)]
    status = properties.get("VersioningConfiguration", {}).get("Status")
    if status:
        backend.put_bucket_versioning(bucket.name, status)
    rules = properties.get("LifecycleConfiguration", {}).get("Rules")
    if rules:
        backend.put_bucket_lifecycle(bucket.name, [_lifecycle_rule(r) for r in rules])


def create_bucket(
    cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
) -> Any:
    bucket = _create_bucket(resource_name, cloudformation_json, account_id, region_name, **kwargs)
    _bucket_configuration(bucket, cloudformation_json, account_id, region_name)
    return bucket


def update_bucket(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
) -> Any:
    # moto's update tags the bucket named by properties["BucketName"] (a KeyError for generated names):
    # name the bucket being updated, which also tells moto it is not a replacement.
    properties = {"BucketName": original_resource.name, **cloudformation_json.get("Properties", {})}
    resource = {**cloudformation_json, "Properties": properties}
    bucket = _update_bucket(original_resource, new_resource_name, resource, account_id, region_name)
    _bucket_configuration(bucket, resource, account_id, region_name)
    return bucket


class CloudFormationSchedule(CloudFormationModel):
    """AWS::Scheduler::Schedule as CloudFormation creates it: a schedule in the Scheduler backend, named by
    its Name property (else generated), Ref its name, GetAtt Arn its ARN."""

    # moto's model registry files a model under the second part of its module's name (moto.<service>...):
    # this module runs as __main__.
    __module__ = "moto.scheduler.cloudformation"

    def __init__(self, schedule: Schedule, account_id: str, region_name: str) -> None:
        self.schedule = schedule
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Scheduler::Schedule"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @property
    def physical_resource_id(self) -> str:
        return str(self.schedule.name)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Arn":
            return str(self.schedule.arn)
        raise KeyError(attribute_name)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> CloudFormationSchedule:
        properties = cloudformation_json["Properties"]
        schedule = scheduler_backends[account_id][region_name].create_schedule(
            description=properties.get("Description"),
            end_date=properties.get("EndDate"),
            flexible_time_window=properties["FlexibleTimeWindow"],
            group_name=properties.get("GroupName"),
            kms_key_arn=properties.get("KmsKeyArn"),
            name=resource_name,
            schedule_expression=properties["ScheduleExpression"],
            schedule_expression_timezone=properties.get("ScheduleExpressionTimezone"),
            start_date=properties.get("StartDate"),
            state=properties.get("State"),
            target=properties["Target"],
            action_after_completion=properties.get("ActionAfterCompletion"),
        )
        return cls(schedule, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> CloudFormationSchedule:
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        group = cloudformation_json.get("Properties", {}).get("GroupName")
        scheduler_backends[account_id][region_name].delete_schedule(group_name=group, name=resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        scheduler_backends[account_id][region_name].delete_schedule(
            group_name=self.schedule.group_name, name=self.schedule.name
        )


_emr_region_from_url = ElasticMapReduceResponse.get_region_from_url


def emr_region_from_url(self: Any, request: Any, full_url: str) -> str:
    """EMR's own host-name rules first, then the base rules (URL, user agent, the signature's scope)."""
    if any(regex.search(self.parsed_url.netloc) for regex in ElasticMapReduceResponse.emr_region_regex):
        return str(_emr_region_from_url(self, request, full_url))
    return str(BaseResponse.get_region_from_url(self, request, full_url))


cfn_models.ChangeSet.apply = apply_with_outputs
ElasticMapReduceResponse.get_region_from_url = emr_region_from_url  # type: ignore[method-assign]
FakeBucket.create_from_cloudformation_json = classmethod(create_bucket)  # type: ignore[method-assign,assignment]
FakeBucket.update_from_cloudformation_json = classmethod(update_bucket)  # type: ignore[method-assign,assignment]
parsing.ResourceMap.parse_ssm_parameter = parse_ssm_parameter
CloudFormationResponse.describe_change_set = describe_change_set
CloudFormationResponse.delete_change_set = delete_change_set
CloudFormationResponse.execute_change_set = execute_change_set
parsing.clean_json = clean_json
RouteTable.delete_from_cloudformation_json = delete_route_table

if __name__ == "__main__":
    main(sys.argv[1:])
