"""Step contract: run the EMR steps of the synthesized template, as deployed, on local Spark.

What CloudFormation would hand to EMR is read from the cloud assembly (`cdk synth` through the pinned CLI,
into a temporary folder): the AWS::EMR::Cluster's Steps, with every intrinsic resolved (Fn::Sub, Fn::Join,
Ref, Fn::GetStackOutput / Fn::ImportValue to the data stack). Then each step's command line is run with
.venv/bin/spark-submit, in template order, with only these substitutions:

- asset URIs (s3://cdk-hnb659fds-assets-.../<hash>.<ext>) -> the staged files in the cloud assembly that
  `cdk deploy` uploads to those keys (read from the stack's *.assets.json);
- every other s3://<bucket>/<key> -> <tmp>/s3/<bucket>/<key>; the data bucket's data/ prefix holds a copy
  of ../shared/data/fruits-360-sample (Training, Test);
- `--deploy-mode cluster` -> `--master local[2]` (no YARN here);
- weights: with weights=imagenet the app ships the weights as an asset (synthesized here with
  -c weightsFile=<the shared MobileNetV2 file>: no network to download ImageNet weights), so --weights is
  an asset URI like the code's; an s3:// weights URI (-c weights=...) maps like any other URI, to a local
  copy of that same file;
- the interpreter: the cluster's spark-defaults classification is passed as a --properties-file, with
  /usr/bin/python3.11 (what the bootstrap action provisions) replaced by this venv's python.

Every other argument is kept as is. This proves the packaging (--py-files zip, entry file), the argument
names and the ordering of the deployed command lines, not a copy of them.

The release line: the steps run on this venv's pyspark, which must be the Spark series of the synthesized
releaseLabel (stacks/release_lines.py): .venv (pyspark 3.5) synthesizes cdk.json's emr-7.14.0,
.venv-spark41 (pyspark 4.1) synthesizes with -c releaseLabel=emr-spark-8.1.0 (`make test` runs this file in
both).

Set FRUITS_CDK_OUT=<dir> to reuse an assembly synthesized just before (make deploy-check does, and picks the
venv of the label it synthesized).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pyspark
import pytest

from spark_job.contract.records import spark_line
from stacks.release_lines import DEFAULT_LABELS, release_line
from tests.cfn_template import Recurse, get_att_parts, sub_parts, substitute, transform

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO.parent / "shared" / "data" / "fruits-360-sample"
WEIGHTS = REPO.parent / "shared" / "models" / "mobilenet_v2" / "mobilenet_v2_1.0_224_no_top_rebuilt.h5"
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
CLUSTER_PYTHON = "/usr/bin/python3.11"
EXPECTED_IMAGES = {"fit": 440, "transform": 180}  # the sample: Training 440, Test 180
# Stand-ins for values CloudFormation knows only at deploy time.
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}
# Synthesizes through the pinned CDK CLI in a subprocess, then runs Spark: the slow tier.
pytestmark = pytest.mark.slow

SYNTH_ENV = {
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "AWS_EC2_METADATA_DISABLED": "true",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
}


# --- the cloud assembly ---------------------------------------------------------------------------------


@dataclass
class Assembly:
    """The stacks' templates and the asset URIs `cdk deploy` would publish, from a cdk.out folder."""

    root: Path
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)
    assets: dict[str, Path] = field(default_factory=dict)  # s3://bucket/key -> staged file or folder

    @classmethod
    def load(cls, root: Path) -> Assembly:
        manifest = json.loads((root / "manifest.json").read_text())
        assembly = cls(root)
        asset_manifests = []
        for artifact_id, artifact in manifest["artifacts"].items():
            props = artifact.get("properties", {})
            if artifact["type"] == "aws:cloudformation:stack":
                name = props.get("stackName", artifact_id)
                assembly.templates[name] = json.loads((root / props["templateFile"]).read_text())
                assembly.regions[name] = artifact["environment"].rsplit("/", 1)[-1]
            elif artifact["type"] == "cdk:asset-manifest":
                asset_manifests.append(root / props["file"])
        for path in asset_manifests:
            for entry in json.loads(path.read_text()).get("files", {}).values():
                for destination in entry["destinations"].values():
                    bucket = assembly.sub(destination["bucketName"], region=destination["region"])
                    uri = f"s3://{bucket}/{destination['objectKey']}"
                    assembly.assets[uri] = root / entry["source"]["path"]
        return assembly

    def sub(self, text: str, *, region: str, variables: dict[str, Any] | None = None, stack: str = "") -> str:
        """Fn::Sub: ${Name} and ${Resource.Attr}; ${!Literal} stays literal."""

        def lookup(name: str) -> str:
            if variables and name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(stack, logical_id, attribute)
            return str(self.ref(stack, name, region=region))

        return substitute(text, lookup)

    def ref(self, stack: str, name: str, *, region: str) -> Any:
        if name == "AWS::Region":
            return region
        if name == "AWS::StackName":
            return stack
        if name in PSEUDO:
            return PSEUDO[name]
        template = self.templates[stack]
        if name in template.get("Parameters", {}):
            return template["Parameters"][name].get("Default")
        resource = template["Resources"][name]
        if resource["Type"] == "AWS::S3::Bucket":
            # Ref is the bucket name: the one in the template, else CloudFormation generates one.
            given = resource.get("Properties", {}).get("BucketName")
            return self.resolve(given, stack) if given else f"{stack}-{name}".lower()[:63]
        return f"{name}-physical-id"

    def get_att(self, stack: str, logical_id: str, attribute: str) -> str:
        if attribute == "Arn" and self.templates[stack]["Resources"][logical_id]["Type"] == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.ref(stack, logical_id, region=self.regions[stack])}"
        return f"{logical_id}-{attribute}"

    def resolve(self, node: Any, stack: str) -> Any:
        """A template value as CloudFormation would pass it to the resource's API."""
        region = self.regions[stack]

        def on(function: str, arg: Any, recurse: Recurse) -> Any:
            if function == "Ref":
                return self.ref(stack, arg, region=region)
            if function == "Fn::Sub":
                text, variables = sub_parts(arg)
                resolved = {k: recurse(v) for k, v in variables.items()}
                return self.sub(text, region=region, variables=resolved, stack=stack)
            if function == "Fn::Join":
                separator, items = arg
                return separator.join(str(recurse(item)) for item in items)
            if function == "Fn::Select":
                index, items = arg
                return recurse(items)[int(recurse(index))]
            if function == "Fn::GetAtt":
                return self.get_att(stack, *get_att_parts(arg))
            if function == "Fn::GetStackOutput":
                other = arg["StackName"]
                return self.resolve(self.templates[other]["Outputs"][arg["OutputName"]]["Value"], other)
            if function == "Fn::ImportValue":
                export = recurse(arg)
                for other, template in self.templates.items():
                    for output in template.get("Outputs", {}).values():
                        if self.resolve(output.get("Export", {}).get("Name"), other) == export:
                            return self.resolve(output["Value"], other)
                raise KeyError(f"no stack exports {export}")
            raise NotImplementedError(f"{function} in a step argument: teach this test to resolve it")

        return transform(node, on)

    def cluster(self) -> tuple[str, dict[str, Any]]:
        """(stack name, resolved Properties) of the one AWS::EMR::Cluster."""
        found = [
            (stack, resource)
            for stack, template in self.templates.items()
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::EMR::Cluster"
        ]
        assert len(found) == 1, f"expected one AWS::EMR::Cluster, found {len(found)}"
        stack, resource = found[0]
        return stack, self.resolve(resource["Properties"], stack)

    def buckets(self) -> dict[str, str]:
        """Resolved names of the S3 buckets declared in the assembly: name -> 'stack/logical id'."""
        return {
            self.ref(stack, logical_id, region=self.regions[stack]): f"{stack}/{logical_id}"
            for stack, template in self.templates.items()
            for logical_id, resource in template["Resources"].items()
            if resource["Type"] == "AWS::S3::Bucket"
        }


# The Spark series of this venv's pyspark, and the label of its line the test synthesizes.
LOCAL_SERIES = spark_line(pyspark.__version__)


def synthesize(outdir: Path) -> Path:
    reuse = os.environ.get("FRUITS_CDK_OUT")
    if reuse:
        return Path(reuse).resolve()
    assert LOCAL_SERIES in DEFAULT_LABELS, f"pyspark {pyspark.__version__} runs no release line's Spark"
    env = {**os.environ, **SYNTH_ENV}
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(outdir)]
    command += ["--context", f"weightsFile={WEIGHTS}"]
    command += ["--context", f"releaseLabel={DEFAULT_LABELS[LOCAL_SERIES]}"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"cdk synth failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return outdir


# --- from the deployed command line to a local one --------------------------------------------------------


@dataclass
class LocalMapping:
    assembly: Assembly
    s3_root: Path

    def path(self, uri: str) -> str:
        if uri in self.assembly.assets:
            staged = self.assembly.assets[uri]
            assert staged.exists(), f"{uri} maps to {staged}, which the assembly does not hold"
            return str(staged)
        assert not uri.startswith("s3://cdk-"), f"{uri}: a CDK asset URI that no asset manifest publishes"
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return str(self.s3_root / bucket / key)

    def value(self, token: str) -> str:
        if token.startswith("s3://"):
            return self.path(token)
        flag, eq, rest = token.partition("=")
        if eq and flag.startswith("--") and rest.startswith("s3://"):
            return f"{flag}={self.path(rest)}"
        return token


def option(args: list[str], flag: str) -> str:
    """The value of `--flag value` or `--flag=value` in args."""
    for i, token in enumerate(args):
        if token == flag:
            return args[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {args}")


def local_command(args: list[str], mapping: LocalMapping, properties_file: Path) -> list[str]:
    assert args[0] == "spark-submit", args
    rest = list(args[1:])
    i = rest.index("--deploy-mode")
    assert rest[i + 1] == "cluster", rest
    del rest[i : i + 2]
    mapped = [mapping.value(token) for token in rest]
    for i, token in enumerate(mapped):
        if token == "--weights" and mapped[i + 1] == "imagenet":
            mapped[i + 1] = str(WEIGHTS)  # the one value replaced besides URIs: no network here
        elif token == "--weights=imagenet":
            mapped[i] = f"--weights={WEIGHTS}"
    return [str(SPARK_SUBMIT), "--master", "local[2]", "--properties-file", str(properties_file), *mapped]


def local_spark_defaults(configurations: list[dict[str, Any]], path: Path) -> Path:
    """The cluster's spark-defaults, with the cluster interpreter replaced by this venv's python."""
    defaults: dict[str, str] = {}
    for configuration in configurations:
        if configuration["Classification"] == "spark-defaults":
            defaults.update(configuration.get("ConfigurationProperties", {}))
    assert defaults.get("spark.pyspark.python") == CLUSTER_PYTHON, defaults
    local = {k: (sys.executable if v == CLUSTER_PYTHON else v) for k, v in defaults.items()}
    local["spark.ui.enabled"] = "false"  # local only: several test runs may share this machine
    path.write_text("".join(f"{key} {value}\n" for key, value in sorted(local.items())))
    return path


# --- the test ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(module_tmp: Path) -> dict[str, Any]:
    """The synthesized assembly and the cluster's resolved properties."""
    assembly = Assembly.load(synthesize(module_tmp / "cdk.out"))
    stack, cluster = assembly.cluster()
    return {"assembly": assembly, "stack": stack, "cluster": cluster}


def test_the_local_spark_is_the_release_line_spark(deployed):
    """The steps below run on this venv's pyspark: the Spark of the synthesized release (a 4.1 cluster's
    steps are never proven on 3.5, nor the reverse)."""
    label = deployed["cluster"]["ReleaseLabel"]
    assert release_line(label).spark_series == LOCAL_SERIES, (
        f"{label} runs Spark {release_line(label).spark_series}, this venv pyspark {pyspark.__version__}: "
        "run the step contract in the venv of that line (.venv or .venv-spark41; scripts/deploy_check.sh)"
    )


def test_steps_are_fit_then_transform_on_the_fit_model(deployed):
    steps = deployed["cluster"]["Steps"]
    assert [s["Name"] for s in steps] == ["fit", "transform"]
    for step in steps:
        assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
        assert all(isinstance(a, str) for a in step["HadoopJarStep"]["Args"]), "unresolved argument"
    fit, transform = (s["HadoopJarStep"]["Args"] for s in steps)
    assert fit[fit.index("fit") - 1] == transform[transform.index("transform") - 1], "same entry file"
    assert option(transform, "--model") == option(fit, "--output") + "/model"


def test_code_uris_are_staged_assets(deployed):
    """--py-files, the entry file, the weights, the bootstrap script and its arguments (the lock, the
    wheelhouse) are what `cdk deploy` uploads."""
    assembly = deployed["assembly"]
    cluster = deployed["cluster"]
    for step in cluster["Steps"]:
        args = step["HadoopJarStep"]["Args"]
        package = assembly.assets[option(args, "--py-files")]
        entry = assembly.assets[args[args.index("--py-files") + 2]]
        with zipfile.ZipFile(package) as archive:
            names = set(archive.namelist())
        assert {"spark_job/__init__.py", "spark_job/driver/cli.py", "spark_job/requirements.in"} <= names
        assert entry.read_bytes() == (REPO / "spark_job" / "entrypoint.py").read_bytes()
        weights = option(args, "--weights")
        if not os.environ.get("FRUITS_CDK_OUT"):  # synthesized here, with weightsFile=WEIGHTS
            assert assembly.assets[weights].read_bytes() == WEIGHTS.read_bytes()
    (action,) = cluster["BootstrapActions"]
    script = action["ScriptBootstrapAction"]
    bootstrap = (REPO / "bootstrap" / "install_python_deps.sh").read_bytes()
    assert assembly.assets[script["Path"]].read_bytes() == bootstrap
    lock_uri, wheelhouse_uri = script["Args"]
    lock = REPO / "spark_job" / "requirements.x86_64.lock"
    assert assembly.assets[lock_uri].read_bytes() == lock.read_bytes()
    wheelhouse = assembly.assets[wheelhouse_uri]  # a folder, zipped by cdk deploy
    assert wheelhouse_uri.endswith(".zip") and wheelhouse.is_dir()
    manifest = json.loads((wheelhouse / "wheelhouse.json").read_text())
    assert manifest["lockSha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert sorted(manifest["wheels"]) == sorted(p.name for p in wheelhouse.glob("*.whl"))


def test_run_outputs_are_in_the_data_bucket(deployed):
    """What the steps write (and transform reads back, the features store too) lives in a bucket of this
    app; only --input and --weights may point elsewhere (-c inputUri=..., -c weights=s3://...)."""
    buckets = deployed["assembly"].buckets()
    steps = {s["Name"]: s["HadoopJarStep"]["Args"] for s in deployed["cluster"]["Steps"]}
    written = [option(steps["fit"], "--output"), option(steps["transform"], "--output")]
    written.append(option(steps["transform"], "--model"))
    written.extend(option(steps[name], "--features-store") for name in ("fit", "transform"))
    for uri in written:
        assert uri.startswith("s3://"), uri
        bucket = uri.removeprefix("s3://").split("/", 1)[0]
        assert bucket in buckets, f"{uri}: {bucket} is not a bucket of this app ({sorted(buckets)})"
    assert len({uri.removeprefix("s3://").split("/", 1)[0] for uri in written}) == 1


@pytest.mark.slow
def test_steps_run_on_local_spark(deployed, tmp_path):
    assembly: Assembly = deployed["assembly"]
    cluster = deployed["cluster"]
    mapping = LocalMapping(assembly, tmp_path / "s3")
    properties = local_spark_defaults(cluster["Configurations"], tmp_path / "spark-defaults.conf")
    steps = {s["Name"]: s["HadoopJarStep"]["Args"] for s in cluster["Steps"]}

    # The data bucket's input prefix holds the sample: fit reads <input>/Training, transform <input>/Test.
    fit_input = Path(mapping.path(option(steps["fit"], "--input")))
    transform_input = Path(mapping.path(option(steps["transform"], "--input")))
    assert (fit_input.name, transform_input.name) == ("Training", "Test")
    assert fit_input.parent == transform_input.parent
    for part in ("Training", "Test"):
        shutil.copytree(SAMPLE / part, fit_input.parent / part)
    assert WEIGHTS.is_file(), f"the shared MobileNetV2 weights are missing: {WEIGHTS}"
    for args in steps.values():  # -c weights=s3://...: that object holds the shared weights
        weights = option(args, "--weights")
        if weights.startswith("s3://") and weights not in assembly.assets:
            local = Path(mapping.path(weights))
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(WEIGHTS, local)

    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("SPARK_HOME", None)  # the venv's pyspark: the release's Spark series (checked above)
    store = Path(mapping.path(option(steps["fit"], "--features-store")))
    assert option(steps["transform"], "--features-store") == option(steps["fit"], "--features-store")
    run_dir = Path(mapping.path(option(steps["fit"], "--output"))).parent
    # Twice, as two deployments on the same data: the second run (its run folder moved aside, as a new run
    # id would have it) finds every image in the features store and infers none.
    for attempt in (1, 2):
        if attempt == 2:
            run_dir.rename(run_dir.with_name(run_dir.name + "-first"))
        run_steps(steps, mapping, properties, tmp_path, env, attempt)
    assert store.is_dir() and any(store.rglob("*.parquet"))


def run_steps(
    steps: dict[str, list[str]],
    mapping: LocalMapping,
    properties: Path,
    tmp_path: Path,
    env: dict[str, str],
    attempt: int,
) -> None:
    for name in ("fit", "transform"):  # template order
        command = local_command(steps[name], mapping, properties)
        log = tmp_path / f"{name}-{attempt}.log"
        with log.open("w") as handle:
            result = subprocess.run(
                command, cwd=tmp_path, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=1800
            )
        assert result.returncode == 0, f"{name} step failed: {command}\n{log.read_text()[-6000:]}"

        output = Path(mapping.path(option(steps[name], "--output")))
        manifest = json.loads((output / "manifest.json").read_text())
        assert manifest["mode"] == name
        assert manifest["images_featurized"] == EXPECTED_IMAGES[name]
        assert manifest["images_rejected"] == 0
        inferred = EXPECTED_IMAGES[name] if attempt == 1 else 0
        assert (manifest["images_inferred"], manifest["images_reused"]) == (
            inferred,
            EXPECTED_IMAGES[name] - inferred,
        )
        assert pq.read_table(output / "features").num_rows == EXPECTED_IMAGES[name]
        assert pq.read_table(output / "pca").num_rows == EXPECTED_IMAGES[name]
        if name == "fit":
            assert (output / "model" / "featurizer.json").is_file()
            assert (output / "model" / "pipeline").is_dir()
