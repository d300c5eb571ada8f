"""CloudFormation custom resource: on stack deletion, clear what EMR added to our network.

EMR adds rules that make the cluster's security groups reference each other; CloudFormation then cannot
delete the groups (DependencyViolation) and `cdk destroy` fails. AmazonEMRServicePolicy_v2 (v6) also lets
EMR create a VPC endpoint in a tagged VPC (tags Name=emr-service-vpce and
for-use-with-amazon-emr-managed-policies=true), which CloudFormation does not know and which would keep
the VPC and subnet from being deleted. On emr-spark-8.x EMR provisions such an endpoint to its service
(aws.api.<region>.emr-service-cell01) at every launch in the VPC, with network interfaces in the
cluster's subnets and the service-access group. This resource is deleted after the cluster and before the
groups and the VPC: its Delete first deletes those EMR endpoints in our VPC (and waits until they are
gone), then revokes whatever rules are left, ingress and egress, so the groups and the VPC go.

An endpoint to EMR's service in our VPC without those tags (which the service role's policies should make
impossible: the tags are a condition of creating one) is not deleted, since this function may delete
tagged endpoints only: the Delete fails naming it and the command that deletes it, rather than letting
CloudFormation fail later, less clearly, on the VPC.

Create and Update do nothing. Delete revokes only while the whole stack is going away (DELETE_IN_PROGRESS,
or ROLLBACK_IN_PROGRESS after a failed create): if the resource is merely replaced or dropped by an update,
the groups stay in use and keep their rules. Groups or rules already gone are not errors. The handler
answers CloudFormation itself (no provider framework) and always answers, also on unexpected errors.
Standard library and boto3 only (the Lambda runtime's).
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

TEARDOWN_STATUSES = frozenset({"DELETE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS"})
_GONE_GROUP = {"InvalidGroup.NotFound", "InvalidGroupId.NotFound", "InvalidGroupId.Malformed"}
_GONE_RULE = {"InvalidPermission.NotFound"}
# The tags AmazonEMRServicePolicy_v2 requires on the endpoint EMR creates (CreateEmrServiceVPCEndpoint).
EMR_ENDPOINT_TAGS = {"Name": "emr-service-vpce", "for-use-with-amazon-emr-managed-policies": "true"}
ENDPOINT_WAIT_S = 240  # endpoint deletion takes about a minute; the function's timeout is 5 minutes
ENDPOINT_POLL_S = 5
# The service of the endpoint EMR 8 provisions: aws.api.<region>.emr-service-cell01 (the 8.0.0 release notes);
# any cell.
EMR_SERVICE_NAME = re.compile(r"^aws\.api\.[a-z0-9-]+\.emr-service-")
_GONE_STATES = {"deleted", "failed"}


def _live(endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in endpoints if e.get("State", "").lower() not in _GONE_STATES]


def emr_endpoints(ec2: Any, vpc_id: str) -> list[dict[str, Any]]:
    """EMR-created endpoints of our VPC that still exist (not deleted)."""
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    filters += [{"Name": f"tag:{key}", "Values": [value]} for key, value in EMR_ENDPOINT_TAGS.items()]
    found: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_vpc_endpoints").paginate(Filters=filters):
        found += _live(page["VpcEndpoints"])
    return found


def untagged_emr_service_endpoints(ec2: Any, vpc_id: str) -> list[str]:
    """Ids of the live endpoints to EMR's service in `vpc_id` that lack EMR_ENDPOINT_TAGS."""
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    stray = []
    for page in ec2.get_paginator("describe_vpc_endpoints").paginate(Filters=filters):
        for endpoint in _live(page["VpcEndpoints"]):
            tags = {t["Key"]: t["Value"] for t in endpoint.get("Tags", [])}
            tagged = all(tags.get(key) == value for key, value in EMR_ENDPOINT_TAGS.items())
            if EMR_SERVICE_NAME.match(endpoint.get("ServiceName", "")) and not tagged:
                stray.append(endpoint["VpcEndpointId"])
    return stray


def delete_emr_endpoints(
    ec2: Any,
    vpc_id: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wait_s: float = ENDPOINT_WAIT_S,
) -> list[str]:
    """Delete the EMR-created endpoints of `vpc_id` and wait until none is left; return their ids.

    Raises TimeoutError when some are still there after `wait_s` (CloudFormation then reports the failure
    instead of failing later, less clearly, on the VPC)."""
    endpoints = emr_endpoints(ec2, vpc_id)
    ids = [e["VpcEndpointId"] for e in endpoints]
    if not ids:
        LOG.info("no EMR-created VPC endpoint in %s", vpc_id)
        return []
    LOG.info("deleting EMR-created VPC endpoints %s", ids)
    result = ec2.delete_vpc_endpoints(VpcEndpointIds=ids)
    for failure in result.get("Unsuccessful", []):
        error = failure.get("Error", {})
        if error.get("Code") != "InvalidVpcEndpoint.NotFound":
            raise RuntimeError(f"could not delete VPC endpoint {failure.get('ResourceId')}: {error}")
    deadline = clock() + wait_s
    while True:
        left = [e["VpcEndpointId"] for e in emr_endpoints(ec2, vpc_id)]
        if not left:
            return ids
        if clock() >= deadline:
            raise TimeoutError(f"EMR-created VPC endpoints still present after {wait_s:.0f} s: {left}")
        sleep(ENDPOINT_POLL_S)


def revoke_group_rules(ec2: Any, group_ids: list[str]) -> dict[str, int]:
    """Revoke every ingress and egress rule of each group; return {group id: rules revoked}.

    One call per permission, so a rule removed meanwhile (by EMR or CloudFormation) does not stop the rest.
    """
    revoked: dict[str, int] = {}
    for group_id in group_ids:
        try:
            groups = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
        except ClientError as error:
            if error.response["Error"]["Code"] in _GONE_GROUP:
                LOG.info("security group %s is already gone", group_id)
                revoked[group_id] = 0
                continue
            raise
        count = 0
        for group in groups:
            for key, revoke in (
                ("IpPermissions", ec2.revoke_security_group_ingress),
                ("IpPermissionsEgress", ec2.revoke_security_group_egress),
            ):
                for permission in group.get(key, []):
                    try:
                        revoke(GroupId=group_id, IpPermissions=[permission])
                    except ClientError as error:
                        if error.response["Error"]["Code"] not in _GONE_RULE:
                            raise
                        continue
                    count += 1
        LOG.info("revoked %d rule(s) of %s", count, group_id)
        revoked[group_id] = count
    return revoked


def stack_is_being_removed(cloudformation: Any, stack_id: str) -> bool:
    stacks = cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
    status = stacks[0]["StackStatus"] if stacks else "DELETE_IN_PROGRESS"
    LOG.info("stack status: %s", status)
    return status in TEARDOWN_STATUSES


def handle(event: dict[str, Any], ec2: Any, cloudformation: Any) -> dict[str, Any]:
    """The resource's work; returns the Data of the response."""
    request = event["RequestType"]
    group_ids = list(event["ResourceProperties"].get("GroupIds", []))
    vpc_id = event["ResourceProperties"].get("VpcId")
    if request != "Delete":
        return {"Revoked": 0, "EndpointsDeleted": 0}
    if not stack_is_being_removed(cloudformation, event["StackId"]):
        LOG.info("resource removed by an update, the groups stay: nothing revoked")
        return {"Revoked": 0, "EndpointsDeleted": 0}
    deleted = delete_emr_endpoints(ec2, vpc_id) if vpc_id else []
    revoked = revoke_group_rules(ec2, group_ids)
    stray = untagged_emr_service_endpoints(ec2, vpc_id) if vpc_id else []
    if stray:
        raise RuntimeError(
            f"VPC endpoints to the EMR service without the tags {EMR_ENDPOINT_TAGS} are left in {vpc_id}: "
            f"{stray}; this function deletes tagged ones only. Delete them (aws ec2 delete-vpc-endpoints "
            f"--vpc-endpoint-ids {' '.join(stray)}), wait until they are gone, then run cdk destroy again"
        )
    return {"Revoked": sum(revoked.values()), "EndpointsDeleted": len(deleted)}


def send_response(event: dict[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3000],
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or f"{event['LogicalResourceId']}-sg-rule-revoker",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(  # the pre-signed HTTPS URL of CloudFormation
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        LOG.info("CloudFormation answered %s", response.status)


def handler(event: dict[str, Any], context: Any) -> None:
    LOG.info("%s request for %s", event.get("RequestType"), event.get("LogicalResourceId"))
    try:
        data = handle(event, boto3.client("ec2"), boto3.client("cloudformation"))
    except Exception as error:  # answer FAILED rather than leave CloudFormation waiting for an hour
        LOG.exception("revoking security group rules failed")
        send_response(event, "FAILED", f"{type(error).__name__}: {error}", {})
        return
    send_response(event, "SUCCESS", "OK", data)
