"""EMR release lines: what differs between the EMR 7.x labels (Spark 3.5) and the LTS line emr-spark-8.x
(Spark 4.1), in one record per line. The stacks read the line of `releaseLabel` here and nowhere else.

Sources (docs/spark-4.md has the details and what a first cluster must confirm):
- emr-7.x: https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-7140-release.html (emr-7.14.0: Spark
  3.5, Python 3.9 and 3.11, Amazon Linux 2023); python3.11 ships from emr-7.1.0 on
  (https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-release-app-versions-7.x.html).
- emr-spark-8.1.0: https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-spark810-release.html (Spark
  4.1.1-amzn-0, Scala 2.13, Python 3.11 (PySpark's default) and 3.13, Corretto 17; long-term support until
  2029-09-07), and the 8.0.0 notes it builds on, with the networking change:
  https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-spark800-release.html.

No CDK import: the step contract test (tests/deploy) reads the line of the label it synthesized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# python3.11 ships with EMR 7.1.0 and later.
MIN_7X_MINOR = 1
_RELEASE_7X = re.compile(r"^emr-7\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class ReleaseLine:
    """What the cluster does differently on one line of EMR releases.

    name: how docs and messages call the line.
    spark_series: the Spark (and local pyspark) series, "major.minor": the job's private APIs are gated on
        it (spark_job/shims/pyspark_private.py) and the step contract runs on a venv of that series.
    applications: EMR applications installed on the cluster (RunJobFlow's Applications).
    python: the interpreter PySpark runs on (spark-env, spark-defaults) and the bootstrap action installs
        the lock into (bootstrap/install_python_deps.sh's default; a test keeps them equal).
    classifications: the configuration classifications checked on the line's release page; the cluster
        may use only these (a classification EMR does not know fails the cluster at launch).
    service_endpoint: EMR 8 provisions a VPC endpoint to its service in the cluster's VPC and reaches the
        nodes through it (HTTPS 443 into the service-access group) instead of the 7.x 8443/9443 rules; the
        service role then needs ec2:CreateVpcEndpoint and ec2:ModifyVpcEndpoint.
    release_page: the AWS page the line's facts come from.
    """

    name: str
    spark_series: str
    applications: tuple[str, ...]
    python: str
    classifications: frozenset[str]
    service_endpoint: bool
    release_page: str


# The classifications both lines have that this project uses or may use (the release pages list more).
_COMMON_CLASSIFICATIONS = frozenset(
    {
        "spark",
        "spark-defaults",
        "spark-env",
        "spark-hive-site",
        "core-site",
        "yarn-site",
        "yarn-env",
        "hadoop-env",
    }
)

EMR_7 = ReleaseLine(
    name="emr-7.x",
    spark_series="3.5",
    applications=("Spark",),
    python="/usr/bin/python3.11",
    # emrfs-site: s3:// is EMRFS on 7.x (S3A is the connector for s3a://, and EMRFS's replacement from 7.10:
    # https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-s3a-migrate.html).
    classifications=_COMMON_CLASSIFICATIONS | {"emrfs-site"},
    service_endpoint=False,
    release_page="https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-7140-release.html",
)

EMR_SPARK_8 = ReleaseLine(
    name="emr-spark-8.x (long-term support)",
    spark_series="4.1",
    # AmazonCloudWatchAgent, Delta, Hudi, Iceberg, JupyterEnterpriseGateway, Livy, Spark; Hadoop is no
    # application there (HDFS and YARN are still installed), so ["Spark"] stays the whole list.
    applications=("Spark",),
    # Python 3.11 is PySpark's default on 8.1.0 (3.13 is available); AL2023's /usr/bin/python3 (3.9) "is not
    # supported for PySpark workloads". The lock's wheels are cp311: the same interpreter as on 7.x.
    python="/usr/bin/python3.11",
    # No emrfs-site: EMRFS is gone, s3:// is the S3A connector.
    classifications=_COMMON_CLASSIFICATIONS,
    service_endpoint=True,
    release_page="https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-spark810-release.html",
)

# The EMR 8 labels checked against their release pages and run locally on the matching pyspark (4.1.x).
# emr-spark-8.0.0 (Spark 4.0) is left out on purpose: the job was not tested on pyspark 4.0.
CHECKED_8X_LABELS: dict[str, ReleaseLine] = {"emr-spark-8.1.0": EMR_SPARK_8}

ALLOWED_RELEASES = (
    f"an EMR 7.x release label from emr-7.{MIN_7X_MINOR}.0 on (python3.11), e.g. emr-7.14.0, or a checked "
    f"EMR 8 (LTS) label: {', '.join(CHECKED_8X_LABELS)} (docs/spark-4.md)"
)
# The label of each line the local tests synthesize when they run on that line's pyspark.
DEFAULT_LABELS = {"3.5": "emr-7.14.0", "4.1": "emr-spark-8.1.0"}


class UnknownReleaseError(ValueError):
    """A release label outside the checked lines (the message says what is allowed)."""


def release_line(label: str) -> ReleaseLine:
    """The line of `label`; UnknownReleaseError for any other label."""
    if label in CHECKED_8X_LABELS:
        return CHECKED_8X_LABELS[label]
    match = _RELEASE_7X.match(label)
    if match is not None and int(match.group(1)) >= MIN_7X_MINOR:
        return EMR_7
    raise UnknownReleaseError(f"{label!r} is not {ALLOWED_RELEASES}")
