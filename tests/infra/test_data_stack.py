"""FruitsData: the data and access-log buckets, retention, the optional upload, the nodes' S3 policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from stacks.data_stack import DATA_BUCKET_LOGICAL_ID
from tests.cfn_template import render
from tests.infra.conftest import Synth, build_app

BUCKET_ARN = f"${{{DATA_BUCKET_LOGICAL_ID}.Arn}}"


@pytest.fixture(scope="module")
def template(default_synth: Synth) -> Template:
    return default_synth.data


@pytest.fixture(scope="module")
def disposable(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """retainData=false and a local dataset to upload."""
    upload = tmp_path_factory.mktemp("fruits-360")
    (upload / "Training" / "Apple").mkdir(parents=True)
    (upload / "Training" / "Apple" / "0_100.jpg").write_bytes(b"\xff\xd8\xff")
    synth = build_app(tmp_path_factory.mktemp("cdk-out"), {"retainData": "false", "uploadDir": str(upload)})
    return synth.data


def buckets(template: Template) -> dict[str, dict[str, Any]]:
    return template.find_resources("AWS::S3::Bucket")


def test_data_bucket_logical_id_is_stable(template: Template):
    """Renaming the construct would replace the bucket (and lose the data): the logical id is pinned."""
    assert DATA_BUCKET_LOGICAL_ID == "DataBucketE3889A50"
    assert set(buckets(template)) == {"DataBucketE3889A50", "AccessLogsBucket83982689"}


@pytest.mark.parametrize("logical_id", [DATA_BUCKET_LOGICAL_ID, "AccessLogsBucket83982689"])
def test_buckets_are_private_encrypted_and_tls_only(template: Template, logical_id: str):
    props = buckets(template)[logical_id]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert "BucketName" not in props  # generated name
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": logical_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "s3:*",
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_data_bucket_logs_to_the_access_log_bucket(template: Template):
    props = buckets(template)[DATA_BUCKET_LOGICAL_ID]["Properties"]
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "AccessLogsBucket83982689"},
        "LogFilePrefix": "data-bucket/",
    }


def test_retained_by_default(template: Template):
    for bucket in buckets(template).values():
        assert bucket["DeletionPolicy"] == "Retain"
        assert bucket["UpdateReplacePolicy"] == "Retain"
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    template.resource_count_is("Custom::CDKBucketDeployment", 0)


def test_retain_data_false_empties_and_deletes(disposable: Template):
    for bucket in buckets(disposable).values():
        assert bucket["DeletionPolicy"] == "Delete"
    auto_delete = disposable.find_resources("Custom::S3AutoDeleteObjects")
    assert sorted(render(r["Properties"]["BucketName"]) for r in auto_delete.values()) == [
        "${AccessLogsBucket83982689}",
        f"${{{DATA_BUCKET_LOGICAL_ID}}}",
    ]


def test_upload_dir_is_deployed_into_data_without_pruning(disposable: Template):
    disposable.resource_count_is("Custom::CDKBucketDeployment", 1)
    disposable.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {
            "DestinationBucketName": {"Ref": DATA_BUCKET_LOGICAL_ID},
            "DestinationBucketKeyPrefix": "data/",
            "Prune": False,
        },
    )


def test_output(template: Template):
    assert template.to_json()["Outputs"]["BucketName"]["Value"] == {"Ref": DATA_BUCKET_LOGICAL_ID}


def test_node_policy_grants_only_the_prefixes(template: Template):
    (policy,) = template.find_resources("AWS::IAM::ManagedPolicy").values()
    by_sid = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert {sid: (s["Action"], render(s["Resource"])) for sid, s in by_sid.items()} == {
        "ListDataBucket": (
            ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            BUCKET_ARN,
        ),
        "ReadInput": ("s3:GetObject", f"{BUCKET_ARN}/data/*"),
        "ReadWriteRuns": (
            [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:GetObject",
                "s3:ListMultipartUploadParts",
                "s3:PutObject",
            ],
            f"{BUCKET_ARN}/runs/*",
        ),
        "ReadWriteFeaturesStore": (  # S3A appends to the store as it writes runs/
            [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:GetObject",
                "s3:ListMultipartUploadParts",
                "s3:PutObject",
            ],
            f"{BUCKET_ARN}/features/*",
        ),
        "WriteEmrLogs": ("s3:PutObject", f"{BUCKET_ARN}/emr-logs/*"),
    }
    assert all(s["Effect"] == "Allow" for s in by_sid.values())


def test_upload_dir_must_exist(tmp_path: Path):
    from stacks.config import ConfigError

    with pytest.raises(ConfigError, match=r"uploadDir='.*missing'"):
        build_app(tmp_path, {"uploadDir": str(tmp_path / "missing")})


def test_data_bucket_is_versioned_and_expires_only_noncurrent_versions(template: Template):
    """An overwritten or deleted photo, store file or run stays recoverable for noncurrentVersionDays;
    no rule expires a current object (the features store under features/ is kept)."""
    props = buckets(template)[DATA_BUCKET_LOGICAL_ID]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireNoncurrentVersions"] == {
        "Id": "ExpireNoncurrentVersions",
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        "ExpiredObjectDeleteMarker": True,
    }
    assert not any("ExpirationInDays" in r or "ExpirationDate" in r for r in rules.values())


def test_noncurrent_version_days_comes_from_context(tmp_path: Path):
    synth = build_app(tmp_path, {"noncurrentVersionDays": "90"})
    props = buckets(synth.data)[DATA_BUCKET_LOGICAL_ID]["Properties"]
    (rule,) = [r for r in props["LifecycleConfiguration"]["Rules"] if r["Id"] == "ExpireNoncurrentVersions"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
