"""`moto_server` with three gaps of moto 5.2.5 filled, the ones `cdk deploy` / `cdk destroy` of this app hit.

Run as ``python -m tests.emulated.patched_moto_server -H 127.0.0.1 -p PORT`` (same options as
``moto_server``). Each patch makes the emulator do what CloudFormation does; none of them knows this app:

1. A stack created by executing a change set (how the CDK CLI deploys) gets its Outputs: moto builds the
   output map when the stack record is created with an empty template and never again.
2. ``Fn::GetStackOutput`` (CDK's weak cross-stack references) resolves to the other stack's output value.
3. ``AWS::EC2::RouteTable`` can be deleted by CloudFormation (with its subnet associations); moto has no
   delete for it, so the VPC (which moto refuses to delete while it has extra route tables) stays and
   `cdk destroy` fails with "The vpc ... has dependencies and cannot be deleted".
"""

from __future__ import annotations

import sys
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.ec2.models.route_tables import RouteTable
from moto.server import main

_apply = cfn_models.ChangeSet.apply
_clean_json = parsing.clean_json


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


cfn_models.ChangeSet.apply = apply_with_outputs
parsing.clean_json = clean_json
RouteTable.delete_from_cloudformation_json = delete_route_table

if __name__ == "__main__":
    main(sys.argv[1:])
