"""Configuration shared by every command, and the errors the CLI turns into one-line messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from spark_job.contract.names import DATA_STACK_NAME, PIPELINE_STACK_NAME

DEFAULT_REGION = "eu-west-3"  # when no cdk.json says otherwise
CDK_JSON = "cdk.json"

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_ERROR = 3


def default_region(directory: Path | None = None) -> str:
    """The region the stacks are deployed to: cdk.json's context "region" when run from the repository
    (`make status` and co.: cdk.json in the working directory), else DEFAULT_REGION."""
    try:
        document = json.loads(((directory or Path.cwd()) / CDK_JSON).read_text(encoding="utf-8"))
        region = document["context"]["region"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_REGION
    return region.strip() if isinstance(region, str) and region.strip() else DEFAULT_REGION


@dataclass(frozen=True)
class OpsConfig:
    """Where the pipeline lives. ``bucket`` overrides the bucket read from the stacks' outputs."""

    region: str = DEFAULT_REGION
    stack_name: str = PIPELINE_STACK_NAME
    data_stack_name: str = DATA_STACK_NAME
    profile: str | None = None
    bucket: str | None = None
    # --follow: seconds between two polls of the EMR API, and how long to wait in total.
    poll_seconds: int = 30
    timeout_seconds: int = 6 * 3600


class OpsError(Exception):
    """An expected failure (no stack, no run, no credentials...): printed as one line, exit code 3."""

    exit_code = EXIT_ERROR
