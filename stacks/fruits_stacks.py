"""The CDK app's two stacks, FruitsData and FruitsPipeline, built the way app.py and the tests build them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk

from spark_job.contract.names import DATA_STACK_NAME, PIPELINE_STACK_NAME
from stacks import PROJECT_ROOT
from stacks.config import AppConfig
from stacks.data_stack import DataStack
from stacks.pipeline_stack import PipelineStack


@dataclass(frozen=True)
class FruitsStacks:
    data: DataStack
    pipeline: PipelineStack


def build_stacks(app: cdk.App, config: AppConfig, *, project_root: Path = PROJECT_ROOT) -> FruitsStacks:
    """Both stacks in `config.region`, with no account: synth needs no credentials and does no lookups.

    The account comes from the credentials at deploy time (environment-agnostic stacks).
    """
    env = cdk.Environment(region=config.region)
    data = DataStack(
        app,
        DATA_STACK_NAME,
        config=config,
        env=env,
        description="Fruits! pipeline: data bucket (data/, runs/, emr-logs/) and its access logs",
    )
    pipeline = PipelineStack(
        app,
        PIPELINE_STACK_NAME,
        config=config,
        data_bucket=data.bucket,
        data_access_policy=data.node_access_policy,
        project_root=project_root,
        env=env,
        description="Fruits! pipeline: VPC, EMR cluster running the fit and transform steps, then ending",
    )
    pipeline.add_stack_dependency(data, reason="uses the data bucket and its node policy")
    return FruitsStacks(data=data, pipeline=pipeline)
