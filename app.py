#!/usr/bin/env python3
"""CDK app: read the configuration (cdk.json context, -c overrides), create the stacks, check, synth."""

import aws_cdk as cdk
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import AppConfig
from stacks.fruits_stacks import build_stacks

app = cdk.App()
build_stacks(app, AppConfig.from_context(app.node.try_get_context))
Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
