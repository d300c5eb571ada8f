"""CloudFormation custom resource: on stack deletion, revoke every rule of the EMR security groups.

EMR adds rules that make the cluster's security groups reference each other; CloudFormation then cannot
delete the groups (DependencyViolation) and `cdk destroy` fails. This resource is deleted after the cluster
and before the groups: its Delete revokes whatever rules are left, ingress and egress, so the groups go.

Create and Update do nothing. Delete revokes only while the whole stack is going away (DELETE_IN_PROGRESS,
or ROLLBACK_IN_PROGRESS after a failed create): if the resource is merely replaced or dropped by an update,
the groups stay in use and keep their rules. Groups or rules already gone are not errors. The handler
answers CloudFormation itself (no provider framework) and always answers, also on unexpected errors.
Standard library and boto3 only (the Lambda runtime's).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import boto3
from botocore.exceptions import ClientError

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

TEARDOWN_STATUSES = frozenset({"DELETE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS"})
_GONE_GROUP = {"InvalidGroup.NotFound", "InvalidGroupId.NotFound", "InvalidGroupId.Malformed"}
_GONE_RULE = {"InvalidPermission.NotFound"}


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
    if request != "Delete":
        return {"Revoked": 0}
    if not stack_is_being_removed(cloudformation, event["StackId"]):
        LOG.info("resource removed by an update, the groups stay: nothing revoked")
        return {"Revoked": 0}
    revoked = revoke_group_rules(ec2, group_ids)
    return {"Revoked": sum(revoked.values())}


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
