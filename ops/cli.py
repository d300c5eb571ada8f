"""Command line: ``python -m ops [global options] COMMAND ...`` (upload, run, status, runs, results, cost,
before-destroy)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import boto3

from ops import __version__
from ops.aws import Aws, aws_errors
from ops.config import (
    DEFAULT_REGION,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    OpsConfig,
    OpsError,
    default_region,
)
from spark_job.contract.names import DATA_PREFIX, DATA_STACK_NAME, PIPELINE_STACK_NAME

log = logging.getLogger("ops")

EPILOG = f"""\
exit codes: 0 ok; 1 an EMR step (or the cluster) failed; 2 bad usage; 3 error (stack not deployed,
run not found, no credentials...). AWS_PROFILE and AWS_ENDPOINT_URL are honoured; the region is
--region, not AWS_REGION: by default the context "region" of cdk.json in the working directory (where
`make deploy` put the stacks), else {DEFAULT_REGION}.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops",
        description="Upload data, start and follow runs (EMR clusters) and fetch the results of the Fruits! "
        "pipeline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--region",
        default=default_region(),
        help="AWS region (default: cdk.json's context region in the working directory, else "
        f"{DEFAULT_REGION}; here %(default)s)",
    )
    parser.add_argument("--profile", default=None, help="AWS profile (default: AWS_PROFILE or the default)")
    parser.add_argument(
        "--stack", default=PIPELINE_STACK_NAME, help="pipeline stack name (default: %(default)s)"
    )
    parser.add_argument(
        "--data-stack", default=DATA_STACK_NAME, help="data stack name (default: %(default)s)"
    )
    parser.add_argument("--bucket", default=None, help="data bucket (default: read from the stacks' outputs)")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "upload",
        help="upload a local Fruits-360 folder (with Training/ and Test/) under the data prefix",
        description="Upload DIR to s3://<bucket>/<prefix>, skipping objects already there with the same "
        "size and checksum: rerun it to resume an interrupted upload.",
    )
    up.add_argument("dir", type=Path, metavar="DIR", help="local folder, e.g. fruits-360 (Training/, Test/)")
    up.add_argument("--prefix", default=DATA_PREFIX, help="key prefix (default: %(default)s)")
    up.add_argument("--workers", type=_positive_int, default=8, help="parallel uploads (default: 8)")

    start = commands.add_parser(
        "run",
        help="start a run now: a transient cluster of the deployed definition, a new run id, no stack change",
        description="Start one run on the cluster definition the pipeline stack published (the same fleets, "
        "bootstrap action, configurations, roles, subnets, logs, auto-termination and steps as the "
        "deploy's cluster) under a new run id; print the run id and the cluster id. No stack changes.",
    )
    start.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help="run id (default: manual-<UTC date>-<time>-<4 hex>); must be new",
    )

    st = commands.add_parser("status", help="a run's EMR cluster and its steps (default: the newest run)")
    st.add_argument("run", nargs="?", metavar="RUN", help="run id (default: the newest run of the stack)")
    st.add_argument("--follow", action="store_true", help="wait until the steps end (exit 1 if one failed)")
    st.add_argument(
        "--poll",
        type=_positive_int,
        default=30,
        metavar="SECONDS",
        help="--follow: seconds between polls (30)",
    )
    st.add_argument(
        "--timeout", type=_positive_int, default=6 * 3600, metavar="SECONDS",
        help="--follow: give up after this long (default: 21600)",
    )  # fmt: skip

    commands.add_parser("runs", help="one line per run under runs/ (images, k, variance, probe accuracy)")

    res = commands.add_parser("results", help="download a run's manifests and report, print its summary")
    res.add_argument("run", nargs="?", metavar="RUN", help="run id (default: the newest run of the stack)")
    res.add_argument("--dest", type=Path, default=None, help="local folder (default: output/results/RUN)")

    commands.add_parser(
        "before-destroy",
        help="refuse (exit 3) while a run started by `make run` or the schedule is still up",
        description="`make destroy` runs this first: a cluster CloudFormation did not create keeps using the "
        "stack's subnets, security groups and roles, so the stack could not be deleted under it.",
    )

    cost = commands.add_parser(
        "cost",
        help="estimated time per stage and dollars of one run for the configuration (offline: no AWS call)",
        description="The cluster cdk.json's context and the -c overrides configure (as `cdk synth -c` "
        "would), each stage's measured cost per photo in ops/data/rates.json (make record-rates) and the "
        "price table in ops/data/prices_<region>.json: the time per stage at --images, 90k, 1M and 10M "
        "photos, and one run's start-to-end time and cost, as a range.",
    )
    cost.add_argument(
        "--images", type=_positive_int, required=True, help="images of one run (fit + transform)"
    )
    cost.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a context override, as for cdk (e.g. -c taskCapacity=8); repeatable",
    )
    cost.add_argument("--cdk-json", type=Path, default=Path("cdk.json"), help="default: %(default)s")
    return parser


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s" if verbose else "%(message)s"))
    root = logging.getLogger("ops")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Sequence[str] | None = None, session: boto3.Session | None = None) -> int:
    """Run one command; returns the exit code. ``session`` lets tests pass an instrumented session."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    configure_logging(args.verbose, args.quiet)
    if args.command == "cost":
        return run_cost(args)
    config = OpsConfig(
        region=args.region,
        stack_name=args.stack,
        data_stack_name=args.data_stack,
        profile=args.profile,
        bucket=args.bucket,
        poll_seconds=getattr(args, "poll", 30),
        timeout_seconds=getattr(args, "timeout", 6 * 3600),
    )
    try:
        with aws_errors():
            aws = Aws(config, session, max_pool=max(10, getattr(args, "workers", 0)))
            return run_command(aws, args)
    except OpsError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def run_cost(args: argparse.Namespace) -> int:
    """Offline: a bad key or value is the user's to fix (exit 2, the message naming it)."""
    from ops.cost import CostInputError, parse_context, run
    from stacks.config import ConfigError, UnknownContextKeyError

    try:
        print(run(args.images, parse_context(args.context), cdk_json=args.cdk_json))
    except (CostInputError, OSError) as exc:  # a missing cdk.json, price table or throughput file
        log.error("error: %s", exc)
        return EXIT_ERROR
    except (ValueError, ConfigError, UnknownContextKeyError) as exc:
        log.error("error: %s", exc)
        return EXIT_USAGE
    return EXIT_OK


def run_command(aws: Aws, args: argparse.Namespace) -> int:
    if args.command == "upload":
        from ops.upload import upload

        report = upload(aws, args.dir, args.prefix, workers=args.workers)
        print(
            f"uploaded {report.uploaded} files ({report.bytes_uploaded / 1e6:.1f} MB), "
            f"skipped {report.skipped} already there (same size and checksum)"
        )
        return EXIT_OK
    if args.command == "run":
        from ops.run import start_run

        started = start_run(aws, args.run)
        print(f"Run      {started.run_id} -> {started.output_uri}")
        print(f"Cluster  {started.cluster_id}")
        print(f"Follow it with `make follow RUN={started.run_id}`, then `make results RUN={started.run_id}`")
        return EXIT_OK
    if args.command == "status":
        from ops.clusters import ACTIVE_STATES, find_run, run_clusters
        from ops.status import ClusterStatus

        run = find_run(aws, args.run)
        # With no RUN: the newest run, and a line for each other run still up (a scheduled and a manual one).
        up = [] if args.run else run_clusters(aws, states=ACTIVE_STATES)
        others = [c for c in up if c.cluster_id != run.cluster_id]
        status = ClusterStatus(aws, run, others)
        return status.follow() if args.follow else status.report()
    if args.command == "before-destroy":
        from ops.run import refuse_destroy_while_runs_are_up

        refuse_destroy_while_runs_are_up(aws)
        return EXIT_OK
    if args.command == "runs":
        from ops.runs import runs

        return runs(aws)
    if args.command == "results":
        from ops.runs import results

        return results(aws, args.run, args.dest)
    raise OpsError(f"unknown command {args.command}")  # argparse prevents this


__all__ = ["EXIT_ERROR", "build_parser", "main"]
