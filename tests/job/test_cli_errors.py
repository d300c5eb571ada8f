"""Bad arguments and bad input: a message, exit status 2, and nothing written that looks like a result."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_job.driver.cli import main
from tests.job_support import run_cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "--input", "x", "--output", "y", "--variance", "0"], "--variance must be in (0, 1]"),
        (["fit", "--input", "x", "--output", "y", "--variance", "1.5"], "--variance must be in (0, 1]"),
        (
            ["fit", "--input", "x", "--output", "y", "--variance", "0.9", "--components", "5"],
            "not allowed with argument",
        ),
        (["fit", "--input", "x", "--output", "y", "--components", "0"], "--components must be in [1, 1280]"),
        (["fit", "--input", "x", "--output", "y", "--image-size", "100"], "invalid choice"),
        (["fit", "--output", "y"], "the following arguments are required: --input"),
        (["transform", "--input", "x", "--output", "y"], "the following arguments are required: --model"),
        (["bogus"], "invalid choice"),
        (["fit", "--input", "x", "--output", "y", "--engine", "onnx"], "argument --engine: invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_usage(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


def _assert_fails_cleanly(spark, capsys, out: Path, message: str, *argv) -> None:
    assert run_cli(spark, *argv, "--output", out) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "a failed run must not leave an output folder behind"


def test_missing_input(spark, tmp_path, weights_path, capsys) -> None:
    _assert_fails_cleanly(
        spark,
        capsys,
        tmp_path / "out",
        "input not found",
        "fit",
        "--input",
        tmp_path / "nope",
        "--weights",
        weights_path,
    )


def test_empty_input(spark, tmp_path, weights_path, capsys) -> None:
    (tmp_path / "empty" / "Orange").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not a photo")
    _assert_fails_cleanly(
        spark,
        capsys,
        tmp_path / "out",
        "no JPEG or PNG images",
        "fit",
        "--input",
        tmp_path / "empty",
        "--weights",
        weights_path,
    )


def test_missing_weights(spark, sample_dir, tmp_path, capsys) -> None:
    _assert_fails_cleanly(
        spark,
        capsys,
        tmp_path / "out",
        "weights file not found",
        "fit",
        "--input",
        sample_dir / "Test",
        "--weights",
        tmp_path / "none.h5",
    )


@pytest.mark.slow
def test_unreadable_weights(spark, sample_dir, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not HDF5")
    _assert_fails_cleanly(
        spark,
        capsys,
        tmp_path / "out",
        "unreadable weights",
        "fit",
        "--input",
        sample_dir / "Test",
        "--weights",
        bad,
    )


def test_transform_with_a_folder_that_is_not_a_model(
    spark, sample_dir, tmp_path, weights_path, capsys
) -> None:
    _assert_fails_cleanly(
        spark,
        capsys,
        tmp_path / "out",
        "is not a model folder",
        "transform",
        "--model",
        sample_dir,
        "--input",
        sample_dir / "Test",
        "--weights",
        weights_path,
    )


def test_transform_with_other_weights_than_the_model(
    spark, fit_run, sample_dir, tmp_path, weights_path, capsys
) -> None:
    # A valid weights file (it loads) that is not the model's: the sha256 check must refuse it.
    from spark_job.workers.network import build_network

    other = tmp_path / "other.weights.h5"
    build_network(str(weights_path), 224).save_weights(str(other))
    assert (
        run_cli(
            spark,
            "transform",
            "--model",
            fit_run / "model",
            "--input",
            sample_dir / "Test",
            "--output",
            tmp_path / "out",
            "--weights",
            other,
        )
        == 2
    )
    assert "differ from the model's" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_existing_output_is_not_overwritten(spark, fit_run, sample_dir, weights_path, capsys) -> None:
    before = (fit_run / "manifest.json").read_text()
    assert (
        run_cli(
            spark,
            "transform",
            "--model",
            fit_run / "model",
            "--input",
            sample_dir / "Test",
            "--output",
            fit_run,
            "--weights",
            weights_path,
        )
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    assert (fit_run / "manifest.json").read_text() == before


def _model_folder(root: Path, featurizer: str) -> Path:
    """A model folder whose featurizer.json says `featurizer`; pipeline/ is never reached."""
    model = root / "model"
    (model / "pipeline" / "metadata").mkdir(parents=True)
    (model / "featurizer.json").write_text(featurizer)
    return model


@pytest.mark.parametrize(
    ("featurizer", "message"),
    [
        ('{"weights": {}, "k": 3}', "has no key 'image_size'"),
        ('{"image_size": 224', "is not valid JSON"),
        (
            '{"schema_version": 9, "image_size": 224}',
            "has schema_version 9; this job reads featurizer.json up to",
        ),
        ('{"image_size": "224"}', "featurizer.json.image_size must be int, got str"),
    ],
)
def test_transform_with_a_malformed_featurizer_record_exits_2(
    spark, tmp_path, capsys, featurizer: str, message: str
) -> None:
    model = _model_folder(tmp_path, featurizer)
    (tmp_path / "in").mkdir()
    argv = ["transform", "--model", model, "--input", tmp_path / "in", "--output", tmp_path / "out"]
    assert run_cli(spark, *argv) == 2
    err = capsys.readouterr().err
    assert "is not a readable model" in err and message in err
    assert not (tmp_path / "out").exists()


def test_summary_of_a_malformed_manifest_exits_2(tmp_path, capsys) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text('{"mode": "fit"}')
    with pytest.raises(SystemExit) as exc:
        main(["summary", str(tmp_path / "run")])
    assert exc.value.code == 2
    assert "manifest.json has no key 'input'" in capsys.readouterr().err
