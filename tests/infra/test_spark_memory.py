"""The executors' memory overhead follows the featurize engine the deployed steps run."""

from __future__ import annotations

from spark_job.contract.names import DEFAULT_ENGINE
from spark_job.driver.config import build_parser, config_from_args
from stacks.cluster import StepInputs, fit_args, transform_args
from stacks.instance_types import INSTANCE_TYPES
from stacks.spark_settings import ENGINE_WORKER_MIB, STEP_ENGINE, WORKER_MIB_BY_ENGINE, size_executors

INPUTS = StepInputs(
    package_url="s3://b/job.zip",
    entry_url="s3://b/entry.py",
    input_uri="s3://b/data",
    run_uri="s3://b/runs/r",
    weights="imagenet",
    image_size=224,
    components=None,
    variance_target=0.95,
)


def test_the_executors_are_sized_for_the_step_engine() -> None:
    assert STEP_ENGINE == DEFAULT_ENGINE == "litert"
    assert WORKER_MIB_BY_ENGINE["litert"] == ENGINE_WORKER_MIB
    m5 = [INSTANCE_TYPES["m5.xlarge"]]
    assert size_executors(m5).spark_defaults()["spark.executor.memoryOverhead"] == "2g"
    tf = size_executors(m5, WORKER_MIB_BY_ENGINE["tensorflow"]).spark_defaults()
    assert tf["spark.executor.memoryOverhead"] == "6g"


def test_the_steps_run_the_engine_the_overhead_was_sized_for() -> None:
    """The steps pass no --engine, so fit runs the job's default; transform follows the fitted engine."""
    parser = build_parser()
    for args in (fit_args(INPUTS), transform_args(INPUTS)):
        assert "--engine" not in args and not any(a.startswith("--engine=") for a in args)
        mode = next(a for a in args if a in ("fit", "transform"))
        engine = config_from_args(parser.parse_args(args[args.index(mode) :])).engine
        assert engine == (STEP_ENGINE if mode == "fit" else None)
