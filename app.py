#!/usr/bin/env python3
"""CDK app: read the configuration (cdk.json context, -c overrides), create the stacks, check, synth."""

import sys

import aws_cdk as cdk
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import AppConfig, ConfigError, UnknownContextKeyError, check_context_keys
from stacks.fruits_stacks import build_stacks
from stacks.run_launch import RunRequestTooLargeError
from stacks.runtime_deps import LockError
from stacks.weights import WeightsError

app = cdk.App()
try:
    check_context_keys(app.node.get_all_context())
    build_stacks(app, AppConfig.from_context(app.node.try_get_context))
except (
    ConfigError,
    UnknownContextKeyError,
    LockError,
    WeightsError,
    RunRequestTooLargeError,
) as error:  # the user's to fix: the message, no traceback
    sys.exit(f"error: {error}")
Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
