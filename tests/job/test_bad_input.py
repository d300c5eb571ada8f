"""Real photo folders contain junk: the run goes on, loses nothing, and says what happened."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.job_support import read_manifest, run_cli

NESTED_CLASS = "Pommes rôties"


def _jpeg_bytes(sample_dir: Path) -> bytes:
    return sorted((sample_dir / "Test" / "Orange").glob("*.jpg"))[0].read_bytes()


@pytest.fixture(scope="module")
def junk_folder(sample_dir: Path, tmp_path_factory) -> tuple[Path, dict[str, set[str]]]:
    """A folder mixing good images with every kind of junk; returns it and the expected outcome per file."""
    root = tmp_path_factory.mktemp("junk") / "input"
    good_jpeg = _jpeg_bytes(sample_dir)
    expect: dict[str, set[str]] = {"featurized": set(), "rejected": set(), "skipped": set()}

    def put(
        rel: str,
        data: bytes | None = None,
        image: Image.Image | None = None,
        fmt: str = "JPEG",
        outcome: str = "featurized",
    ) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if image is not None:
            image.save(path, format=fmt)
        else:
            path.write_bytes(data or b"")
        expect[outcome].add(rel)

    for i, src in enumerate(sorted((sample_dir / "Test" / "Orange").glob("*.jpg"))[:3]):
        put(f"Orange/good_{i}.jpg", src.read_bytes())
    put("Orange/empty.jpg", b"", outcome="rejected")
    put("Orange/truncated.jpg", good_jpeg[: len(good_jpeg) // 2], outcome="rejected")
    png = io.BytesIO()
    Image.new("RGB", (100, 100), (10, 200, 30)).save(png, format="PNG")
    put("Orange/truncated.png", png.getvalue()[:60], outcome="rejected")  # Pillow's error has a cause
    rng = np.random.default_rng(0)
    garbled = bytearray(good_jpeg)
    garbled[600:-2] = rng.integers(0, 256, len(garbled) - 602, dtype=np.uint8).tobytes()
    put("Orange/garbled.jpg", bytes(garbled), outcome="rejected")
    put("Orange/not_really.jpg", b"just some text saved with a .jpg name\n", outcome="rejected")
    put("Modes/gray.jpg", image=Image.new("L", (100, 100), 90))
    put("Modes/cmyk.jpg", image=Image.new("CMYK", (100, 100), (10, 200, 30, 0)))
    put("Modes/palette.png", image=Image.new("RGB", (100, 100), (200, 30, 30)).convert("P"), fmt="PNG")
    put("Modes/rgba.PNG", image=Image.new("RGBA", (100, 100), (0, 128, 255, 100)), fmt="PNG")
    gradient = np.tile(np.linspace(0, 255, 4000, dtype=np.uint8), (3000, 1))
    put("Modes/huge.jpeg", image=Image.fromarray(gradient).convert("RGB"))
    put("Modes/tiny.png", image=Image.new("RGB", (3, 3), (0, 255, 0)), fmt="PNG")
    put(f"{NESTED_CLASS}/sous dossier é/photo été 1.jpg", good_jpeg)
    put(f"{NESTED_CLASS}/a/b/deep photo.JPG", good_jpeg)
    (root / "Empty Class").mkdir()
    put("notes.txt", b"where these photos came from\n", outcome="skipped")
    put("Orange/readme.md", b"# notes\n", outcome="skipped")
    return root, expect


@pytest.fixture(scope="module")
def junk_run(spark, fit_run, junk_folder, weights_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("junk-run") / "out"
    code = run_cli(
        spark,
        "transform",
        "--model",
        fit_run / "model",
        "--input",
        junk_folder[0],
        "--output",
        out,
        "--weights",
        weights_path,
    )
    assert code == 0
    return out


def _rel(path: str, root: Path) -> str:
    return str(Path(path.removeprefix("file:")).relative_to(root))


def test_counts_reconcile(junk_run, junk_folder) -> None:
    _, expect = junk_folder
    m = read_manifest(junk_run)
    assert m["images_featurized"] == len(expect["featurized"]) == 11
    assert m["images_rejected"] == len(expect["rejected"]) == 5
    assert m["images_skipped"] == len(expect["skipped"]) == 2
    assert m["images_discovered"] == m["images_featurized"] + m["images_rejected"] == 16
    assert m["images_inferred"] == 11
    assert m["classes"] == ["Modes", "Orange", NESTED_CLASS]


def test_every_file_accounted_for_by_path(junk_run, junk_folder) -> None:
    root, expect = junk_folder
    features = pd.read_parquet(junk_run / "features")
    rejects = pd.read_parquet(junk_run / "rejects")
    skipped = read_manifest(junk_run)["skipped_files"]
    assert {_rel(p, root) for p in features["path"]} == expect["featurized"]
    assert {_rel(p, root) for p in rejects["path"]} == expect["rejected"]
    assert {_rel(p, root) for p in skipped} == expect["skipped"]
    assert features["features"].map(len).eq(1280).all()
    assert np.isfinite(np.stack(features["features"])).all()


def test_labels_are_the_top_folder_even_when_nested(junk_run, junk_folder) -> None:
    root, _ = junk_folder
    features = pd.read_parquet(junk_run / "features")
    labels = {_rel(p, root): label for p, label in zip(features.path, features.label, strict=True)}
    assert labels[f"{NESTED_CLASS}/sous dossier é/photo été 1.jpg"] == NESTED_CLASS
    assert labels[f"{NESTED_CLASS}/a/b/deep photo.JPG"] == NESTED_CLASS
    assert labels["Modes/cmyk.jpg"] == "Modes"


def test_rejects_say_why(junk_run, junk_folder) -> None:
    root, _ = junk_folder
    rejects = pd.read_parquet(junk_run / "rejects")
    reasons = {_rel(p, root): r for p, r in zip(rejects.path, rejects.reason, strict=True)}
    assert reasons["Orange/empty.jpg"] == "empty file (0 bytes)"
    assert reasons["Orange/truncated.jpg"].startswith("truncated image data")
    assert reasons["Orange/truncated.png"].startswith("truncated image data")
    assert "not a decodable image" in reasons["Orange/not_really.jpg"]
    assert reasons["Orange/garbled.jpg"]  # libjpeg's own words; any non-empty reason
    summary = (junk_run / "report" / "summary.md").read_text()
    assert "Orange/truncated.jpg" in summary and "## Rejected images" in summary


def test_same_image_gives_same_features_whatever_its_path(junk_run, junk_folder) -> None:
    root, _ = junk_folder
    features = pd.read_parquet(junk_run / "features")
    by_rel = {_rel(p, root): f for p, f in zip(features.path, features.features, strict=True)}
    np.testing.assert_allclose(
        by_rel[f"{NESTED_CLASS}/sous dossier é/photo été 1.jpg"],
        by_rel[f"{NESTED_CLASS}/a/b/deep photo.JPG"],
        atol=1e-6,
    )


def test_nothing_decodable_fails_with_a_clear_message(spark, tmp_path, weights_path, caplog) -> None:
    folder = tmp_path / "all-bad" / "Orange"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(b"")
    (folder / "b.png").write_text("not a png")
    out = tmp_path / "out"
    assert run_cli(spark, "fit", "--input", folder.parent, "--output", out, "--weights", weights_path) == 1
    assert "none of the 2 images" in caplog.text
    assert not (out / "manifest.json").exists()
    assert len(pd.read_parquet(out / "rejects")) == 2  # the reasons are kept for the user


def test_copy_of_sample_folder_is_untouched(sample_dir) -> None:
    # The junk fixture only wrote into tmp: the shared sample keeps its 440 + 180 images.
    assert len(list((sample_dir / "Training").rglob("*.jpg"))) == 440
    assert len(list((sample_dir / "Test").rglob("*.jpg"))) == 180
