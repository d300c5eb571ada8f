"""`upload DIR`: keys, checksums, skips, and an interrupted upload resumed."""

from __future__ import annotations

import base64
import hashlib
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from ops.aws import Aws
from ops.cli import main
from ops.config import OpsConfig
from ops.upload import RemoteObject, already_there, digests, scan
from tests.ops.support import BUCKET, REPO

CLASSES = {"Training": ["Apple Braeburn", "Banana", "Kiwi"], "Test": ["Apple Braeburn", "Banana", "Kiwi"]}


@pytest.fixture
def fruits(tmp_path: Path) -> Path:
    """A small Fruits-360-shaped folder: Training/<Class>/*.jpg and Test/<Class>/*.jpg, plus hidden files."""
    root = tmp_path / "fruits-360"
    rng = random.Random(7)
    for split, classes in CLASSES.items():
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(4 if split == "Training" else 2):
                size = rng.randrange(800, 6000)
                (folder / f"r_{i}_100.jpg").write_bytes(b"\xff\xd8\xff\xe0" + rng.randbytes(size))
    (root / ".DS_Store").write_bytes(b"finder")
    (root / "Training" / ".cache").mkdir()
    (root / "Training" / ".cache" / "x.jpg").write_bytes(b"hidden")
    return root


def local_keys(root: Path) -> set[str]:
    return {f.key for f in scan(root, "data/")}


def bucket_keys(s3: Any, prefix: str = "data/") -> dict[str, int]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listed}


@pytest.fixture
def puts(session) -> list[str]:
    """Keys of every PutObject the CLI sends through the test session."""
    keys: list[str] = []
    session.events.register(
        "before-parameter-build.s3.PutObject", lambda params, **_: keys.append(params["Key"])
    )
    return keys


def test_upload_puts_every_file_under_data_with_its_checksum(
    fruits, session, s3, bucket, puts, capsys
) -> None:
    assert main(["--bucket", bucket, "upload", str(fruits)], session=session) == 0

    expected = local_keys(fruits)
    assert len(expected) == 18
    assert "data/Training/Apple Braeburn/r_0_100.jpg" in expected
    assert not any("/." in k for k in expected), "hidden files are not uploaded"
    assert sorted(puts) == sorted(expected)
    assert set(bucket_keys(s3)) == expected
    local = fruits / "Test" / "Kiwi" / "r_1_100.jpg"
    head = s3.head_object(Bucket=bucket, Key="data/Test/Kiwi/r_1_100.jpg", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(local.read_bytes()).digest()).decode()
    assert head["ContentType"] == "image/jpeg"
    assert s3.get_object(Bucket=bucket, Key="data/Test/Kiwi/r_1_100.jpg")["Body"].read() == local.read_bytes()
    assert capsys.readouterr().out.startswith("uploaded 18 files (")


def test_second_upload_skips_everything_without_putting(fruits, session, bucket, puts, capsys) -> None:
    assert main(["--bucket", bucket, "upload", str(fruits)], session=session) == 0
    puts.clear()
    capsys.readouterr()

    assert main(["--bucket", bucket, "upload", str(fruits)], session=session) == 0

    assert puts == []
    assert "uploaded 0 files (0.0 MB), skipped 18 already there" in capsys.readouterr().out


@pytest.mark.parametrize("workers", [1, 4])
def test_interrupted_upload_resumes_without_uploading_anything_twice(
    fruits, session, s3, bucket, puts, capsys, workers: int
) -> None:
    total = len(local_keys(fruits))
    fail_after = 7

    def network_drop(params: dict[str, Any], **_: Any) -> None:
        if len(puts) > fail_after:
            raise EndpointConnectionError(endpoint_url="https://s3.eu-west-3.amazonaws.com")

    session.events.register(
        "before-parameter-build.s3.PutObject", network_drop
    )  # runs after the `puts` recorder
    args = ["--bucket", bucket, "upload", str(fruits), "--workers", str(workers)]

    assert main(args, session=session) == 3
    err = capsys.readouterr().err
    first_run = set(bucket_keys(s3))
    assert "upload interrupted" in err
    assert "run the same command to resume" in err
    assert "error: cannot reach AWS" in err
    assert fail_after <= len(first_run) < total
    if workers == 1:
        assert len(first_run) == fail_after
        assert f"upload interrupted: {fail_after} uploaded, 0 skipped, {total - fail_after} not done" in err

    session.events.unregister("before-parameter-build.s3.PutObject", network_drop)
    puts.clear()
    assert main(args, session=session) == 0

    resumed = set(puts)
    assert resumed.isdisjoint(first_run), "nothing already uploaded is uploaded again"
    assert len(puts) == len(resumed) == total - len(first_run)
    assert set(bucket_keys(s3)) == local_keys(fruits)
    assert f"skipped {len(first_run)} already there" in capsys.readouterr().out


def test_changed_or_truncated_objects_are_uploaded_again(fruits, session, s3, bucket, puts) -> None:
    same = fruits / "Training" / "Banana" / "r_0_100.jpg"
    changed = fruits / "Training" / "Banana" / "r_1_100.jpg"
    truncated = fruits / "Training" / "Banana" / "r_2_100.jpg"
    # Uploaded by another tool (default CRC32 checksum, no SHA-256): proven identical by its MD5 ETag.
    s3.put_object(Bucket=bucket, Key="data/Training/Banana/r_0_100.jpg", Body=same.read_bytes())
    flipped = bytearray(changed.read_bytes())
    flipped[100] ^= 0xFF
    s3.put_object(Bucket=bucket, Key="data/Training/Banana/r_1_100.jpg", Body=bytes(flipped))
    s3.put_object(Bucket=bucket, Key="data/Training/Banana/r_2_100.jpg", Body=truncated.read_bytes()[:500])

    assert main(["--bucket", bucket, "upload", str(fruits)], session=session) == 0

    assert "data/Training/Banana/r_0_100.jpg" not in puts
    assert "data/Training/Banana/r_1_100.jpg" in puts, "same size, different content"
    assert "data/Training/Banana/r_2_100.jpg" in puts
    assert len(puts) == 17
    body = s3.get_object(Bucket=bucket, Key="data/Training/Banana/r_1_100.jpg")["Body"].read()
    assert body == changed.read_bytes()


def test_sha256_checksum_proves_identity_when_the_etag_is_not_an_md5(fruits, session, s3, bucket) -> None:
    """SSE-KMS objects have an ETag that is not their MD5: the stored SHA-256 decides."""
    path = fruits / "Test" / "Banana" / "r_0_100.jpg"
    key = "data/Test/Banana/r_0_100.jpg"
    md5, sha = digests(path)
    s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ChecksumAlgorithm="SHA256")
    local = next(f for f in scan(fruits, "data/") if f.key == key)
    kms_like = RemoteObject(size=local.size, etag="0f" * 16, checksum_algorithms=("SHA256",))

    assert already_there(s3, bucket, local, kms_like, md5, sha)
    assert not already_there(s3, bucket, local, kms_like, md5, base64.b64encode(b"\0" * 32).decode())
    no_sha = RemoteObject(size=local.size, etag="0f" * 16, checksum_algorithms=("CRC32",))
    assert not already_there(s3, bucket, local, no_sha, md5, sha)


def test_bucket_comes_from_the_stacks(fruits, session, s3, deploy_stack: Callable[..., None], capsys) -> None:
    # Before the pipeline is deployed: the data stack's only bucket.
    deploy_stack("FruitsData", {}, bucket_name="fruitsdata-bucket-from-stack")
    assert main(["upload", str(fruits)], session=session) == 0
    listed = s3.list_objects_v2(Bucket="fruitsdata-bucket-from-stack", Prefix="data/")
    assert listed["KeyCount"] == 18
    # Once the pipeline is deployed: its BucketName output.
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    deploy_stack("FruitsPipeline", {"BucketName": BUCKET})
    assert Aws(OpsConfig(), session).bucket() == BUCKET


def test_upload_without_any_stack_or_bucket_is_a_one_line_error(fruits, session, capsys) -> None:
    assert main(["upload", str(fruits)], session=session) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "stack FruitsPipeline is not deployed in eu-west-3" in err
    assert "pass --bucket" in err


def test_upload_of_a_missing_folder_or_into_a_missing_bucket(fruits, session, bucket, capsys) -> None:
    assert main(["--bucket", bucket, "upload", str(fruits / "nope")], session=session) == 3
    assert "not a directory" in capsys.readouterr().err
    assert main(["--bucket", "no-such-bucket-here", "upload", str(fruits)], session=session) == 3
    assert "NoSuchBucket" in capsys.readouterr().err


@pytest.mark.slow
def test_make_upload(fruits, bucket, deploy_stack, s3, aws_env) -> None:
    deploy_stack("FruitsPipeline", {"BucketName": bucket})

    missing = subprocess.run(["make", "-s", "upload"], cwd=REPO, env=aws_env, capture_output=True, text=True)
    assert missing.returncode != 0
    assert "usage: make upload DIR=path/to/fruits-360" in missing.stderr

    made = subprocess.run(
        ["make", "-s", "upload", f"DIR={fruits}"], cwd=REPO, env=aws_env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert "uploaded 18 files" in made.stdout
    assert len(bucket_keys(s3)) == 18
