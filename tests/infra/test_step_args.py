"""The EMR steps' command lines as pure functions (stacks/cluster.py), without synthesizing anything."""

from __future__ import annotations

import pytest

from spark_job.driver.config import build_parser, config_from_args
from stacks.cluster import StepInputs, fit_args, transform_args

HEAD = ["spark-submit", "--deploy-mode", "cluster", "--py-files", "s3://a/job.zip", "s3://a/entrypoint.py"]


def inputs(**changes: object) -> StepInputs:
    base = dict(
        package_url="s3://a/job.zip",
        entry_url="s3://a/entrypoint.py",
        input_uri="s3://b/data",
        run_uri="s3://b/runs/r1",
        weights="imagenet",
        variance_target=0.95,
        components=None,
        image_size=224,
    )
    return StepInputs(**{**base, **changes})  # type: ignore[arg-type]


def test_fit_args_with_a_variance_target() -> None:
    assert fit_args(inputs()) == [
        *HEAD,
        "fit",
        "--input",
        "s3://b/data/Training",
        "--output",
        "s3://b/runs/r1/fit",
        "--weights",
        "imagenet",
        "--variance",
        "0.95",
        "--image-size",
        "224",
    ]


def test_transform_args_read_the_fit_model() -> None:
    assert transform_args(inputs()) == [
        *HEAD,
        "transform",
        "--model",
        "s3://b/runs/r1/fit/model",
        "--input",
        "s3://b/data/Test",
        "--output",
        "s3://b/runs/r1/transform",
        "--weights",
        "imagenet",
    ]


def test_a_value_equal_to_an_earlier_token_is_one_flag_value_token() -> None:
    # CloudFormation wants unique Args items: the second "224" becomes --image-size=224.
    args = fit_args(inputs(components=224, variance_target=None))
    assert args[-3:] == ["--components", "224", "--image-size=224"]
    assert len(args) == len(set(args))


@pytest.mark.parametrize("changes", [{}, {"components": 224, "variance_target": None}, {"image_size": 96}])
def test_the_job_parser_reads_what_the_steps_pass(changes: dict[str, object]) -> None:
    step = inputs(**changes)
    for args, mode in ((fit_args(step), "fit"), (transform_args(step), "transform")):
        cfg = config_from_args(build_parser().parse_args(args[args.index(mode) :]))
        assert cfg.mode == mode and cfg.weights == "imagenet"
        if mode == "fit":
            assert (cfg.image_size, cfg.components) == (step.image_size, step.components)
            assert cfg.variance == step.variance_target


def test_both_steps_pass_the_features_store() -> None:
    step = inputs(features_store_uri="s3://b/features")
    for args, mode in ((fit_args(step), "fit"), (transform_args(step), "transform")):
        assert args[-2:] == ["--features-store", "s3://b/features"]
        cfg = config_from_args(build_parser().parse_args(args[args.index(mode) :]))
        assert cfg.features_store == "s3://b/features"
    assert "--features-store" not in fit_args(inputs())
