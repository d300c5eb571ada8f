"""Command line: `python -m spark_job {fit,transform,summary} ...` (also the EMR step's entry point)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from spark_job.config import JobConfig, build_parser, config_from_args
from spark_job.errors import JobFailedError, JobInputError

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


LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


def spark_session(cfg: JobConfig) -> SparkSession:
    from pyspark import SparkConf

    builder = SparkSession.builder.appName(f"fruits-{cfg.mode}")
    under_spark_submit = SparkConf().contains("spark.master")
    if cfg.master:
        builder = builder.master(cfg.master)
    elif not under_spark_submit:
        builder = builder.master("local[*]")
    if not under_spark_submit:
        # Local runs: Python workers use this interpreter (the venv), not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # This session starts the JVM, which here only lists, reads small files and writes Parquet. Its
        # optimizing JIT compiler (C2) took ~6 s of CPU in an 80 s run on 2 cores, taken from the TensorFlow
        # workers; the quick compiler alone (C1) serves that work: ~3 s faster per 8,000 images (make bench).
        builder = builder.config("spark.driver.extraJavaOptions", LOCAL_JVM_OPTIONS)
    # predict_batch_udf caches the model per Python worker only when workers are reused.
    builder = builder.config("spark.python.worker.reuse", "true")
    # Fruits-360 images are ~5 KB: with the default 4 MB open cost Spark packs only ~32 files in a task, and
    # each task has a fixed cost (~0.1 s here: JVM and Python worker turnaround, one Parquet file). 256 KB
    # packs ~500 per task: still hundreds of tasks on the full dataset (balance), and on small inputs Spark
    # splits down to one task per core anyway.
    builder = builder.config("spark.sql.files.openCostInBytes", str(256 << 10))
    # Arrow batches of one inference batch: the Python worker starts on the first images while the JVM
    # still reads the task's other files (one Arrow batch per task would make it wait for all of them).
    builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.batch_size))
    return builder.getOrCreate()


def summarize(run_dirs: Sequence[str]) -> str:
    """A short human summary of finished local runs (their manifest.json)."""
    lines = []
    for run_dir in run_dirs:
        manifest_path = Path(run_dir) / "manifest.json"
        if not manifest_path.is_file():
            raise JobInputError(f"{run_dir} has no manifest.json: not a finished run")
        m = json.loads(manifest_path.read_text())
        lines.append(f"{m['mode']}: {m['input']}")
        lines.append(
            f"  images {m['images_featurized']} featurized / {m['images_discovered']} found, "
            f"{m['images_rejected']} rejected, {m.get('images_skipped', 0)} non-image files skipped"
        )
        lines.append(f"  classes {len(m['classes'])}: {', '.join(m['classes'])}")
        target = f" (target {m['variance_target']})" if m.get("variance_target") else ""
        lines.append(f"  PCA k={m['k']}, variance kept {m['cumulative_variance_at_k']:.4f}{target}")
        lines.append(f"  featurize throughput {m['throughput_img_s']} img/s at {m['image_size']} px")
        for key, what in (("probe_train", "on its training images"), ("probe", "on held-out images")):
            if m.get(key):
                p = m[key]
                lines.append(
                    f"  probe (logistic regression on PCA) {what}: accuracy {p['accuracy']:.4f}, "
                    f"weighted F1 {p['weighted_f1']:.4f}"
                )
        lines.append(
            f"  outputs: {Path(run_dir).resolve()}/ (manifest.json, features/, pca/, rejects/"
            + (", model/" if m["mode"] == "fit" else "")
            + (", report/" if m.get("report") else "")
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

    cfg = config_from_args(args)
    from spark_job.job import run

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
