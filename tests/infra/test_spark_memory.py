"""The executors' memory overhead follows the featurize engine the deployed steps run."""

from __future__ import annotations

from spark_job.config import DEFAULT_ENGINE, build_parser, config_from_args
from stacks.cluster import StepInputs, fit_args, transform_args
from stacks.spark_settings import EXECUTOR_MEMORY_OVERHEAD, SPARK_DEFAULTS, STEP_ENGINE

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


def _gib(value: str) -> int:
    assert value.endswith("g")
    return int(value[:-1])


def test_the_overhead_is_the_step_engines() -> None:
    assert STEP_ENGINE == DEFAULT_ENGINE == "litert"
    assert SPARK_DEFAULTS["spark.executor.memoryOverhead"] == EXECUTOR_MEMORY_OVERHEAD[STEP_ENGINE] == "2g"
    assert _gib(EXECUTOR_MEMORY_OVERHEAD["tensorflow"]) >= 3 * _gib(EXECUTOR_MEMORY_OVERHEAD["litert"])


def test_the_steps_run_the_engine_the_overhead_was_sized_for() -> None:
    """The steps pass no --engine, so fit runs the job's default; transform follows the fitted engine."""
    parser = build_parser()
    for args in (fit_args(INPUTS), transform_args(INPUTS)):
        assert "--engine" not in args and not any(a.startswith("--engine=") for a in args)
        mode = next(a for a in args if a in ("fit", "transform"))
        job_args = args[args.index(mode) :]
        engine = config_from_args(parser.parse_args(job_args)).engine
        assert engine == (STEP_ENGINE if mode == "fit" else None)
