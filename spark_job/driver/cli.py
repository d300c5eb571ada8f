"""Command line: `python -m spark_job {fit,transform,summary,predict} ...` (also the EMR step entry point)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from spark_job.contract.errors import JobFailedError, JobInputError
from spark_job.contract.names import MANIFEST_FILE
from spark_job.contract.records import ManifestRecord
from spark_job.driver.config import build_parser, config_from_args
from spark_job.driver.session import spark_session

log = logging.getLogger("spark_job")

EXIT_USAGE = 2


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def summarize(run_dirs: Sequence[str]) -> str:
    """A short human summary of finished local runs (their manifest.json)."""
    lines = []
    for run_dir in run_dirs:
        manifest_path = Path(run_dir) / MANIFEST_FILE
        if not manifest_path.is_file():
            raise JobInputError(f"{run_dir} has no {MANIFEST_FILE}: not a finished run")
        m = ManifestRecord.read(manifest_path)
        lines.append(f"{m.mode}: {m.input}")
        lines.append(
            f"  images {m.images_featurized} featurized / {m.images_discovered} found, "
            f"{m.images_rejected} rejected, {m.images_skipped} non-image files skipped"
        )
        if m.features_store:
            lines.append(
                f"  features store {m.features_store}: {m.images_reused} reused, {m.images_inferred} inferred"
            )
        lines.append(f"  classes {len(m.classes)}: {', '.join(m.classes)}")
        target = f" (target {m.variance_target})" if m.variance_target else ""
        lines.append(f"  PCA k={m.k}, variance kept {m.cumulative_variance_at_k:.4f}{target}")
        lines.append(f"  featurize throughput {m.throughput_img_s} img/s at {m.image_size} px")
        for probe, what in ((m.probe_train, "on its training images"), (m.probe, "on held-out images")):
            if probe:
                lines.append(
                    f"  probe (logistic regression on PCA) {what}: accuracy {probe.accuracy:.4f}, "
                    f"weighted F1 {probe.weighted_f1:.4f}"
                )
        lines.append(
            f"  outputs: {Path(run_dir).resolve()}/ ({MANIFEST_FILE}, features/, pca/, rejects/"
            + (", model/" if m.mode == "fit" else "")
            + (", report/" if m.report else "")
            + ")"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, spark: SparkSession | None = None) -> int:
    """Exit status: 0 done, 1 the run failed, 2 bad arguments or input (nothing written)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with usage on bad arguments
    configure_logging()
    if args.mode == "summary":
        try:
            sys.stdout.write(summarize(args.runs))
        except JobInputError as exc:
            parser.exit(EXIT_USAGE, f"{parser.prog}: error: {exc}\n")
        return 0
    if args.mode == "predict":  # `python -m spark_job predict` gets here only when called as cli.main
        from spark_job.app.predict import run as predict

        return predict(args)

    if args.mode == "store":
        return store_command(parser, args, spark)

    cfg = config_from_args(args)
    from spark_job.driver.job import run

    own_session = spark is None
    session = spark or spark_session(cfg)
    try:
        run(session, cfg)
    except JobInputError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"{parser.prog} {cfg.mode}: error: {exc}\n")
        return EXIT_USAGE
    except JobFailedError as exc:
        log.error("%s run failed: %s", cfg.mode, exc)
        return 1
    except Exception:
        log.exception("%s run failed", cfg.mode)
        return 1
    finally:
        if own_session:
            session.stop()
    return 0


def store_command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, spark: SparkSession | None
) -> int:
    """`store stats URI` and `store compact URI [--key KEY]`."""
    from spark_job.driver.session import build_session
    from spark_job.driver.store_maintenance import compact_store, format_stats, store_stats

    own_session = spark is None
    session = spark or build_session(f"fruits-store-{args.store_action}", args.master)
    try:
        if args.store_action == "stats":
            sys.stdout.write(format_stats(args.store, store_stats(session, args.store)))
        else:
            for done in compact_store(session, args.store, args.key):
                sys.stdout.write(
                    f"{done.key}: {done.rows_before} rows -> {done.rows_after} "
                    f"({done.runs_removed} run folders rewritten as one)\n"
                )
    except JobInputError as exc:
        sys.stderr.write(f"{parser.prog} store {args.store_action}: error: {exc}\n")
        return EXIT_USAGE
    finally:
        if own_session:
            session.stop()
    return 0
