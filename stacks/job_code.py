"""The code the cluster runs, as S3 assets: package zip, entry file, bootstrap script, requirements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks import packaging


@dataclass(frozen=True)
class JobFiles:
    """Where the shipped files are in a checkout (project_root: the directory holding app.py)."""

    package_dir: Path
    entry_file: Path
    requirements_file: Path
    bootstrap_script: Path

    @classmethod
    def under(cls, project_root: Path) -> JobFiles:
        files = cls(
            package_dir=project_root / packaging.PACKAGE_DIR,
            entry_file=project_root / packaging.ENTRY_FILE,
            requirements_file=project_root / packaging.REQUIREMENTS_FILE,
            bootstrap_script=project_root / packaging.BOOTSTRAP_SCRIPT,
        )
        missing = [
            str(p)
            for p in (files.entry_file, files.requirements_file, files.bootstrap_script)
            if not p.is_file()
        ]
        if missing:
            raise FileNotFoundError("the job code to ship is missing: " + ", ".join(missing))
        return files


class JobCode(Construct):
    """Uploads the job's files as CDK assets (as-is, no bundling) and derives the run id from them.

    Asset object keys are content hashes: changed code gives new S3 URLs, hence new step arguments, hence a
    new cluster (Steps and BootstrapActions are replacement-only) that re-runs the job.
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
    ) -> None:
        super().__init__(scope, construct_id)
        self.package_zip = packaging.build_package_zip(files.package_dir, build_dir)
        self.package = s3_assets.Asset(self, "Package", path=str(self.package_zip))
        self.entry = s3_assets.Asset(self, "Entry", path=str(files.entry_file))
        self.requirements = s3_assets.Asset(self, "Requirements", path=str(files.requirements_file))
        self.bootstrap = s3_assets.Asset(self, "Bootstrap", path=str(files.bootstrap_script))
        shipped = [self.package_zip, files.entry_file, files.bootstrap_script, files.requirements_file]
        self.run_id = run_id or packaging.derive_run_id(shipped, settings)

    @property
    def assets(self) -> list[s3_assets.Asset]:
        return [self.package, self.entry, self.requirements, self.bootstrap]

    def grant_read(self, role: iam.IRole) -> None:
        """s3:GetObject on exactly these four objects (not the whole CDK assets bucket)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadJobCode",
                actions=["s3:GetObject"],
                resources=[a.bucket.arn_for_objects(a.s3_object_key) for a in self.assets],
            )
        )
