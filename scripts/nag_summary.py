#!/usr/bin/env python3
"""cdk-nag in a synthesized cloud assembly: the findings left open and every AwsSolutions acknowledgement.

A synth with AwsSolutionsChecks (registered in app.py) fails on any unacknowledged finding, and a clean synth
writes `"pluginReports": []` to validation-report.json: the report of a passing synth is always empty, so it
cannot show what was acknowledged. This reads what the assembly does record:
  - validation-report.json: the findings still open (after a failed synth);
  - each stack's metadata (`aws:cdk:acknowledged-rules`, written by `Validations.of(x).acknowledge`): every
    AwsSolutions acknowledgement, the construct it sits on and its reason.
Exit 1 when a finding is open, an acknowledgement sits on a whole stack or has a reason shorter than
MIN_REASON characters, or the assembly holds no stack. One line per acknowledgement, then the summary line.
Usage: scripts/nag_summary.py CDK_OUT
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ACK_TYPE = "aws:cdk:acknowledged-rules"
RULE_PACK = "AwsSolutions-"
MIN_REASON = 60


@dataclass(frozen=True)
class Acknowledgement:
    path: str  # construct path, e.g. FruitsPipeline/Cluster/Resource
    rule: str  # e.g. AwsSolutions-EMR4, AwsSolutions-IAM5[Resource::*]
    reason: str


def rule_name(rule: str) -> str:
    """`Annotation::AwsSolutions-IAM5[...]` (or `AwsSolutions::...`) -> `AwsSolutions-IAM5[...]`."""
    return rule[rule.index(RULE_PACK) :] if RULE_PACK in rule else rule


def stack_paths(cdk_out: Path) -> dict[str, Path]:
    """Each stack's construct path -> its metadata file, from manifest.json."""
    manifest = json.loads((cdk_out / "manifest.json").read_text(encoding="utf-8"))
    stacks = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") == "aws:cloudformation:stack":
            path = artifact.get("displayName", artifact_id)
            stacks[path] = cdk_out / artifact.get("additionalMetadataFile", f"{artifact_id}.metadata.json")
    return stacks


def acknowledgements(cdk_out: Path) -> list[Acknowledgement]:
    found = []
    for metadata_file in stack_paths(cdk_out).values():
        if not metadata_file.is_file():
            continue
        for path, entries in json.loads(metadata_file.read_text(encoding="utf-8")).items():
            for entry in entries:
                if entry.get("type") != ACK_TYPE:
                    continue
                for rule, reason in entry.get("data", {}).items():
                    if RULE_PACK in rule:
                        found.append(Acknowledgement(path.lstrip("/"), rule_name(rule), str(reason or "")))
    return sorted(found, key=lambda a: (a.path, a.rule))


def open_findings(cdk_out: Path) -> list[tuple[str, str]]:
    """(rule, construct path) of every finding in validation-report.json (empty after a passing synth)."""
    report = json.loads((cdk_out / "validation-report.json").read_text(encoding="utf-8"))
    return [
        (violation["ruleName"], construct.get("constructPath", "?"))
        for plugin in report.get("pluginReports", [])
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", [])
    ]


def problems(acks: list[Acknowledgement], stacks: list[str]) -> list[str]:
    found = []
    for ack in acks:
        if ack.path in stacks:
            found.append(f"{ack.rule} on the whole stack {ack.path}: acknowledge it on the resource")
        if len(ack.reason.strip()) < MIN_REASON:
            found.append(f"{ack.rule} on {ack.path}: reason shorter than {MIN_REASON} characters")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: nag_summary.py CDK_OUT", file=sys.stderr)
        return 2
    cdk_out = Path(argv[0])
    if not (cdk_out / "validation-report.json").is_file():
        print(f"no {cdk_out}/validation-report.json: synth stopped before validation")
        return 1
    findings = open_findings(cdk_out)
    for rule, path in findings:
        print(f"OPEN  {rule}  {path}")
    if findings:
        print(f"{len(findings)} open finding(s): acknowledge each on its resource with a reason, or fix it")
        return 1
    if not (cdk_out / "manifest.json").is_file() or not (stacks := stack_paths(cdk_out)):
        print(f"no stack in {cdk_out}/manifest.json")
        return 1
    acks = acknowledgements(cdk_out)
    for ack in acks:
        print(f"ACK   {ack.rule}  {ack.path}  ({ack.reason})")
    bad = problems(acks, list(stacks))
    for line in bad:
        print(f"BAD   {line}")
    if bad:
        print(f"{len(bad)} acknowledgement problem(s) among {len(acks)}")
        return 1
    print(f"0 open findings, {len(acks)} acknowledged on resources, each with a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
