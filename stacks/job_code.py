"""What the cluster runs, as S3 assets: job code, entry file, bootstrap script, lock, wheelhouse, weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import AssetHashType
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks import packaging
from stacks.runtime_deps import PLATFORMS, Wheelhouse
from stacks.weights import WeightsFile


@dataclass(frozen=True)
class JobFiles:
    """Where the shipped files are in a checkout (project_root: the directory holding app.py)."""

    package_dir: Path
    entry_file: Path
    lock_file: Path  # the cluster platform's lock (spark_job/requirements.<arch>.lock)
    bootstrap_script: Path

    @classmethod
    def under(cls, project_root: Path, arch: str = "x86_64") -> JobFiles:
        files = cls(
            package_dir=project_root / packaging.PACKAGE_DIR,
            entry_file=project_root / packaging.ENTRY_FILE,
            lock_file=PLATFORMS[arch].lock_path(project_root),
            bootstrap_script=project_root / packaging.BOOTSTRAP_SCRIPT,
        )
        missing = [
            str(p) for p in (files.entry_file, files.lock_file, files.bootstrap_script) if not p.is_file()
        ]
        if missing:
            raise FileNotFoundError("the job code to ship is missing: " + ", ".join(missing))
        return files


class JobCode(Construct):
    """Uploads the job's files as CDK assets (as-is, no bundling) and derives the run id from them.

    Asset object keys are content hashes: changed code gives new S3 URLs, hence new step arguments, hence a
    new cluster (Steps and BootstrapActions are replacement-only) that re-runs the job. The wheelhouse's
    hash is its manifest's sha256 (which lists every wheel's sha256): unchanged dependencies are neither
    hashed again at each synth (about 400 MB) nor uploaded again.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        files: JobFiles,
        build_dir: Path,
        settings: dict[str, Any],
        run_id: str | None,
        wheelhouse: Wheelhouse,
        weights: WeightsFile | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.package_zip = packaging.build_package_zip(files.package_dir, build_dir)
        self.package = s3_assets.Asset(self, "Package", path=str(self.package_zip))
        self.entry = s3_assets.Asset(self, "Entry", path=str(files.entry_file))
        self.lock = s3_assets.Asset(self, "Lock", path=str(files.lock_file))
        self.bootstrap = s3_assets.Asset(self, "Bootstrap", path=str(files.bootstrap_script))
        self.wheelhouse = s3_assets.Asset(
            self,
            "Wheelhouse",
            path=str(wheelhouse.path),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=wheelhouse.manifest_sha256,
        )
        self.weights = (
            s3_assets.Asset(self, "Weights", path=str(weights.path)) if weights is not None else None
        )
        shipped = [self.package_zip, files.entry_file, files.bootstrap_script, files.lock_file]
        self.run_id = run_id or packaging.derive_run_id(
            shipped,
            {
                **settings,
                "lockSha256": wheelhouse.lock_sha256,
                "weightsSha256": weights.sha256 if weights is not None else None,
            },
        )

    @property
    def assets(self) -> list[s3_assets.Asset]:
        shipped = [self.package, self.entry, self.lock, self.bootstrap, self.wheelhouse]
        return shipped if self.weights is None else [*shipped, self.weights]

    def grant_read(self, role: iam.IRole) -> None:
        """s3:GetObject on exactly these objects (not the whole CDK assets bucket)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadJobCode",
                actions=["s3:GetObject"],
                resources=[a.bucket.arn_for_objects(a.s3_object_key) for a in self.assets],
            )
        )
