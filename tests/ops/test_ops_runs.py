"""`runs` and `results` on run folders in the emulated bucket: synthetic ones whose manifests are complete
records (spark_job.contract.records.ManifestRecord reads them), and the job's real outputs on the shared
sample (the session's fit and transform runs)."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from ops.cli import main
from spark_job.app.predict import main as predict_main
from tests.ops.support import BUCKET, REPO, RUN_ID, pipeline_outputs

CLASSES = ["Apple Braeburn", "Banana", "Kiwi", "Lemon"]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one colour, standing in for the job's matplotlib plots."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def manifest(mode: str, run_id: str, images: int, k: int, variance: float, accuracy: float | None) -> dict:
    explained = [variance * 0.5 ** (i + 1) / (1 - 0.5**k) for i in range(k)]
    doc: dict[str, Any] = {
        "mode": mode,
        "input": f"s3://{BUCKET}/data/{'Training' if mode == 'fit' else 'Test'}",
        "output": f"s3://{BUCKET}/runs/{run_id}/{mode}",
        "model": f"s3://{BUCKET}/runs/{run_id}/fit/model",
        "images_discovered": images + 2,
        "images_featurized": images,
        "images_rejected": 1,
        "images_inferred": images,
        "images_skipped": 1,
        "skipped_files": [f"s3://{BUCKET}/data/notes.txt"],
        "classes": CLASSES,
        "image_size": 224,
        "weights": {
            "source": f"s3://{BUCKET}/models/mobilenet_v2.h5",
            "sha256": "ab" * 32,
            "file": "mobilenet_v2.h5",
        },
        "k": k,
        "variance_target": 0.95 if mode == "fit" else None,
        "components_requested": None,
        "explained_variance": explained,
        "cumulative_variance_at_k": sum(explained),
        "timings_s": {"list": 1.2, "weights": 0.8, "featurize": 61.5, "fit_pca": 4.1, "project": 2.0},
        "throughput_img_s": round(images / 61.5, 2),
        "versions": {"python": "3.11.9", "spark": "3.5.2", "tensorflow": "2.16.2"},
        "spark_master": "yarn",
        "default_parallelism": 8,
        "report": f"s3://{BUCKET}/runs/{run_id}/{mode}/report",
        "started_at": "2026-11-21T06:00:00Z",
        "finished_at": f"2026-11-21T06:0{2 if mode == 'fit' else 4}:00Z",
    }
    if accuracy is not None:
        recall = {c: round(accuracy - 0.01 * i, 4) for i, c in enumerate(CLASSES)}
        doc["probe"] = {
            "images": images,
            "accuracy": accuracy,
            "weighted_f1": accuracy - 0.004,
            "per_class_recall": recall,
        }
    return doc


def write_run(root: Path, run_id: str, *, transform: bool = True, reused: int = 0) -> Path:
    """A run folder as the job writes it: manifest, report/, and the bulky features/, pca/, model/."""
    run = root / run_id
    modes = [("fit", 1968, None), *([("transform", 656, 0.973)] if transform else [])]
    for mode, images, accuracy in modes:
        out = run / mode
        for sub in ("features", "pca", *(["model/stages"] if mode == "fit" else [])):
            (out / sub).mkdir(parents=True)
            (out / sub / "part-00000.snappy.parquet").write_bytes(b"PAR1" + bytes(2048) + b"PAR1")
        (out / "report").mkdir()
        doc = manifest(mode, run_id, images, k=87, variance=0.9512, accuracy=accuracy)
        if reused:  # a run with the features store (manifest version 3)
            share = reused if mode == "fit" else 0
            doc.update(schema_version=3, images_reused=share, images_inferred=images - share)
        (out / "manifest.json").write_text(json.dumps(doc, indent=2))
        (out / "report" / "summary.md").write_text(
            f"# Fruits! {mode} - run {run_id}\n\n| images | k | variance |\n|---|---|---|\n"
            f"| {images} | 87 | 95.1% |\n"
        )
        (out / "report" / "explained_variance.png").write_bytes(png(64, 48, (30, 120, 200)))
        (out / "report" / "pca_scatter.png").write_bytes(png(64, 64, (200, 80, 30)))
        if mode == "fit":  # the app's model beside the Spark ML ones (stand-ins: ops only copies them)
            (out / "model" / "classifier.tflite").write_bytes(b"TFL3" + bytes(4096))
            (out / "model" / "labels.txt").write_text("".join(f"{c}\n" for c in CLASSES))
            (out / "model" / "featurizer.json").write_text('{"schema_version": 3}')
    return run


@pytest.fixture
def runs_in_bucket(session, bucket, deploy_stack, tmp_path) -> Path:
    """Two finished runs and one whose transform has not written its manifest yet, uploaded by the CLI."""
    deploy_stack("FruitsPipeline", pipeline_outputs("j-PLACEHOLDER0000"))
    local = tmp_path / "runs"
    write_run(local, "2026-11-20a")
    write_run(local, RUN_ID, reused=1900)
    write_run(local, "2026-11-21b", transform=False)
    assert main(["upload", str(local), "--prefix", "runs/"], session=session) == 0
    return local


def test_runs_prints_one_line_per_run_from_the_manifests(runs_in_bucket, session, capsys) -> None:
    capsys.readouterr()
    assert main(["runs"], session=session) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "RUN",
        "STATE",
        "FIT_IMAGES",
        "K",
        "VARIANCE",
        "TEST_IMAGES",
        "REUSED",
        "INFERRED",
        "ACCURACY",
        "FINISHED",
    ]
    assert [line.split() for line in lines[1:]] == [
        ["2026-11-20a", "done", "1968", "87", "95.1%", "656", "0", "2624", "97.3%", "2026-11-21T06:04:00Z"],
        ["2026-11-21a", "done", "1968", "87", "95.1%", "656", "1900", "724", "97.3%", "2026-11-21T06:04:00Z"],
        ["2026-11-21b", "fit", "only", "1968", "87", "95.1%", "-", "0", "1968", "-", "2026-11-21T06:02:00Z"],
    ]


def test_runs_with_an_empty_bucket(session, bucket, deploy_stack, capsys) -> None:
    deploy_stack("FruitsPipeline", pipeline_outputs("j-PLACEHOLDER0000"))
    assert main(["runs"], session=session) == 0
    assert capsys.readouterr().out == f"no runs under s3://{BUCKET}/runs/ yet\n"


def test_results_downloads_the_stack_run_report_and_prints_the_summary(
    runs_in_bucket, session, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["results"], session=session) == 0  # RUN defaults to the stack's RunId output

    dest = tmp_path / "output" / "results" / RUN_ID
    downloaded = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert downloaded == [
        "fit/manifest.json",
        "fit/model/classifier.tflite",
        "fit/model/featurizer.json",
        "fit/model/labels.txt",
        "fit/report/explained_variance.png",
        "fit/report/pca_scatter.png",
        "fit/report/summary.md",
        "transform/manifest.json",
        "transform/report/explained_variance.png",
        "transform/report/pca_scatter.png",
        "transform/report/summary.md",
    ], "manifests, reports and the app's model only, not features/, pca/ or the Spark ML model"
    source = runs_in_bucket / RUN_ID
    for rel in downloaded:
        assert (dest / rel).read_bytes() == (source / rel).read_bytes()
    out = capsys.readouterr().out
    assert f"# Fruits! fit - run {RUN_ID}" in out
    assert f"# Fruits! transform - run {RUN_ID}" in out
    assert out.rstrip().endswith(f"Results of run {RUN_ID} in output/results/{RUN_ID}/")
    assert f"The app's model: output/results/{RUN_ID}/fit/model/classifier.tflite" in out


def test_results_of_a_named_run_into_a_chosen_folder(runs_in_bucket, session, tmp_path, capsys) -> None:
    dest = tmp_path / "mine"
    assert main(["results", "2026-11-21b", "--dest", str(dest)], session=session) == 0
    assert (dest / "fit" / "manifest.json").is_file()
    assert not (dest / "transform").exists()
    captured = capsys.readouterr()
    assert "run 2026-11-21b has no transform manifest yet" in captured.err
    assert "# Fruits! fit - run 2026-11-21b" in captured.out


def test_results_of_a_missing_run_is_a_one_line_error(runs_in_bucket, session, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert main(["results", "2025-01-01x", "--dest", str(tmp_path / "x")], session=session) == 3
    captured = capsys.readouterr()
    listed = "2026-11-20a, 2026-11-21a, 2026-11-21b"
    assert captured.err == f"error: run 2025-01-01x not found under s3://{BUCKET}/runs/ (runs: {listed})\n"
    assert not (tmp_path / "x").exists()


def test_results_when_the_stack_is_gone_needs_the_bucket(runs_in_bucket, session, tmp_path, capsys) -> None:
    """After `make destroy` the retained bucket still holds the runs: --bucket reaches them."""
    session.client("cloudformation").delete_stack(StackName="FruitsPipeline")
    assert main(["results", "--dest", str(tmp_path / "r")], session=session) == 3
    assert "stack FruitsPipeline is not deployed" in capsys.readouterr().err
    assert main(["--bucket", BUCKET, "results", RUN_ID, "--dest", str(tmp_path / "r")], session=session) == 0
    assert (tmp_path / "r" / "transform" / "report" / "pca_scatter.png").is_file()


def test_make_runs_and_results(runs_in_bucket, aws_env, tmp_path) -> None:
    runs = subprocess.run(["make", "-s", "runs"], cwd=REPO, env=aws_env, capture_output=True, text=True)
    assert runs.returncode == 0, runs.stderr
    assert len(runs.stdout.splitlines()) == 4
    dest = tmp_path / "fetched"
    made = subprocess.run(
        ["make", "-s", "results", "RUN=2026-11-20a", f"DEST={dest}"],
        cwd=REPO,
        env=aws_env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert "# Fruits! transform - run 2026-11-20a" in made.stdout
    assert json.loads((dest / "transform" / "manifest.json").read_text())["probe"]["accuracy"] == 0.973


def test_runs_and_results_of_a_real_local_run(
    fit_run: Path, transform_run: Path, session, bucket, deploy_stack, tmp_path, capsys
) -> None:
    """The job's own outputs (fit + transform on the shared sample), uploaded as a run: what `runs` and
    `results` show of them."""
    deploy_stack("FruitsPipeline", pipeline_outputs("j-PLACEHOLDER0000", run_id="local"))
    for mode, run_dir in (("fit", fit_run), ("transform", transform_run)):
        assert main(["upload", str(run_dir), "--prefix", f"runs/local/{mode}/"], session=session) == 0
    fit = json.loads((fit_run / "manifest.json").read_text())
    capsys.readouterr()

    assert main(["runs"], session=session) == 0
    line = capsys.readouterr().out.splitlines()[1].split()
    assert line[0] == "local"
    assert line[2:4] == [str(fit["images_featurized"]), str(fit["k"])]
    assert line[4] == f"{100 * fit['cumulative_variance_at_k']:.1f}%"

    dest = tmp_path / "local"
    assert main(["results", "--dest", str(dest)], session=session) == 0
    assert json.loads((dest / "fit" / "manifest.json").read_text()) == fit
    for mode, run_dir in (("fit", fit_run), ("transform", transform_run)):
        for rel in ("report/summary.md", "report/explained_variance.png", "report/pca_scatter.png"):
            assert (dest / mode / rel).read_bytes() == (run_dir / rel).read_bytes()
    for rel in ("classifier.tflite", "labels.txt", "featurizer.json"):
        assert (dest / "fit" / "model" / rel).read_bytes() == (fit_run / "model" / rel).read_bytes()
    assert "Probe (logistic regression" in capsys.readouterr().out
    # What was downloaded is enough for the app's model: predict runs on it.
    photo = next(Path(fit["input"]).glob("Banana/*.jpg"))
    assert predict_main(["--model", str(dest / "fit" / "model"), str(photo), "--top", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{photo}: Banana ")


def test_runs_ignores_a_malformed_manifest_and_says_which_key(
    runs_in_bucket, session, s3, bucket, capsys
) -> None:
    doc = manifest("transform", "2026-11-20a", 656, k=87, variance=0.9512, accuracy=0.973)
    del doc["images_featurized"]
    key = "runs/2026-11-20a/transform/manifest.json"  # a finished run: its line said "done"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
    capsys.readouterr()
    assert main(["runs"], session=session) == 0
    captured = capsys.readouterr()
    line = captured.out.splitlines()[1].split()
    assert line[:3] == ["2026-11-20a", "fit", "only"]  # the unreadable transform manifest counts as none
    assert f"s3://{bucket}/{key} has no key 'images_featurized'; ignored" in captured.err
