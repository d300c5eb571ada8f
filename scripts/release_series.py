#!/usr/bin/env python3
"""The Spark series of the release a cloud assembly deploys: `make deploy-check` runs the step contract in the
venv of that series (3.5: .venv, emr-7.x; 4.1: .venv-spark41, emr-spark-8.1.0; docs/spark-4.md).

Reads the one AWS::EMR::Cluster's ReleaseLabel from the assembly's templates and prints its line's Spark
series (stacks/release_lines.py). Exit 1, with the reason on stderr, when no template holds one cluster or
the label is on no checked line.
Usage: scripts/release_series.py CDK_OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks.release_lines import UnknownReleaseError, release_line  # after the path is set


def release_labels(cdk_out: Path) -> list[str]:
    labels = []
    for template in sorted(cdk_out.glob("*.template.json")):
        for resource in json.loads(template.read_text()).get("Resources", {}).values():
            if resource.get("Type") == "AWS::EMR::Cluster":
                labels.append(resource["Properties"]["ReleaseLabel"])
    return labels


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: scripts/release_series.py CDK_OUT", file=sys.stderr)
        return 2
    labels = release_labels(Path(argv[0]))
    if len(labels) != 1 or not isinstance(labels[0], str):
        wanted = "one AWS::EMR::Cluster with a literal ReleaseLabel"
        print(f"expected {wanted} in {argv[0]}, found {labels}", file=sys.stderr)
        return 1
    try:
        print(release_line(labels[0]).spark_series)
    except UnknownReleaseError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
