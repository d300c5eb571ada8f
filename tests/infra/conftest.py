"""Helpers for the CDK assertion tests: synth the real app (offline, region-only env) once per module."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from stacks import PROJECT_ROOT
from stacks.config import AppConfig
from stacks.fruits_stacks import FruitsStacks, build_stacks
from tests.runtime_support import ensure_wheelhouse

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

CDK_JSON = PROJECT_ROOT / "cdk.json"
# No internet here: the shared MobileNetV2 file stands in for the imagenet download (weightsFile). The
# real wheelhouse is used (tests/runtime_support.py builds it from pip's cache when missing); asset
# staging is off so that no synth copies its 400 MB into the test's cloud assembly.
TEST_CONTEXT: dict[str, Any] = {
    "weightsFile": str(
        PROJECT_ROOT.parent / "shared/models/mobilenet_v2/mobilenet_v2_1.0_224_no_top_rebuilt.h5"
    ),
    "aws:cdk:disable-asset-staging": True,
}


def cdk_json_context() -> dict[str, Any]:
    return json.loads(CDK_JSON.read_text())["context"]


@dataclass
class Synth:
    app: cdk.App
    stacks: FruitsStacks
    outdir: Path

    @property
    def data(self) -> Template:
        return Template.from_stack(self.stacks.data)

    @property
    def pipeline(self) -> Template:
        return Template.from_stack(self.stacks.pipeline)


def build_app(
    outdir: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    nag: bool = False,
    project_root: Path = PROJECT_ROOT,
) -> Synth:
    """The app as app.py builds it, with cdk.json's context plus `overrides` (as `-c key=value` would)."""
    context = {
        **cdk_json_context(),
        **TEST_CONTEXT,
        "wheelhouseDir": str(ensure_wheelhouse()),
        **(overrides or {}),
    }
    if context["weights"] != "imagenet" and "weightsFile" not in (overrides or {}):
        context["weightsFile"] = None  # weightsFile stands in for imagenet only
    app = cdk.App(context=context, outdir=str(outdir))
    config = AppConfig.from_context(app.node.try_get_context, base_dir=PROJECT_ROOT)
    stacks = build_stacks(app, config, project_root=project_root)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return Synth(app=app, stacks=stacks, outdir=outdir)


def asset_source(outdir: Path, asset_hash: str) -> Path:
    """The file an asset hash stands for, from the assembly's asset manifests (staged or not)."""
    for manifest in outdir.glob("*.assets.json"):
        files = json.loads(manifest.read_text())["files"]
        if asset_hash in files:
            return outdir / files[asset_hash]["source"]["path"]
    raise AssertionError(f"no asset {asset_hash} in {outdir}")


def only(template: Template, type_name: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.items()))


@pytest.fixture(scope="module")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The app with cdk.json's defaults, one per test module."""
    return build_app(tmp_path_factory.mktemp("cdk-out"))
