"""Configuration shared by every command, and the errors the CLI turns into one-line messages."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REGION = "eu-west-3"
PIPELINE_STACK = "FruitsPipeline"
DATA_STACK = "FruitsData"
DATA_PREFIX = "data/"
RUNS_PREFIX = "runs/"

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_ERROR = 3


@dataclass(frozen=True)
class OpsConfig:
    """Where the pipeline lives. ``bucket`` overrides the bucket read from the stacks' outputs."""

    region: str = DEFAULT_REGION
    stack_name: str = PIPELINE_STACK
    data_stack_name: str = DATA_STACK
    profile: str | None = None
    bucket: str | None = None
    # --follow: seconds between two polls of the EMR API, and how long to wait in total.
    poll_seconds: int = 30
    timeout_seconds: int = 6 * 3600


class OpsError(Exception):
    """An expected failure (no stack, no run, no credentials...): printed as one line, exit code 3."""

    exit_code = EXIT_ERROR
