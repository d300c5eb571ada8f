"""``runs`` and ``results [RUN]``: every run (its folder under runs/, its cluster) and a local copy of one
run's report."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ops.aws import Aws
from ops.clusters import RunCluster, find_run, run_clusters
from ops.config import EXIT_OK, OpsError
from spark_job.contract.names import CLASSIFIER_FILE, FEATURIZER_FILE, LABELS_FILE, MANIFEST_FILE, RUNS_PREFIX
from spark_job.contract.records import ManifestRecord, RecordError

log = logging.getLogger(__name__)

MODES = ("fit", "transform")
# What `results` downloads per mode: files by name, folders (ending in /) whole. Not features/, pca/ or the
# Spark ML models: the app's model (classifier.tflite, labels.txt, and featurizer.json, which says how to feed
# it and lets `python -m spark_job predict --model <dest>/fit/model` run on it).
RESULT_FILES = {
    "fit": (
        MANIFEST_FILE,
        "report/",
        *(f"model/{name}" for name in (CLASSIFIER_FILE, LABELS_FILE, FEATURIZER_FILE)),
    ),
    "transform": (MANIFEST_FILE, "report/"),
}


def run_ids(s3: Any, bucket: str) -> list[str]:
    ids: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=RUNS_PREFIX, Delimiter="/"):
        ids.extend(p["Prefix"][len(RUNS_PREFIX) :].rstrip("/") for p in page.get("CommonPrefixes", []))
    return sorted(ids)


def read_manifest(s3: Any, bucket: str, run: str, mode: str) -> ManifestRecord | None:
    """The run's manifest of `mode`; None when there is none yet, or it cannot be read (logged)."""
    key = f"{RUNS_PREFIX}{run}/{mode}/{MANIFEST_FILE}"
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise
    try:
        manifest: ManifestRecord = ManifestRecord.from_json(body, f"s3://{bucket}/{key}")
    except RecordError as exc:
        log.warning("%s; ignored", exc)
        return None
    return manifest


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else str(value)


def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def run_state(
    fit: ManifestRecord | None, transform: ManifestRecord | None, cluster: RunCluster | None
) -> str:
    """done once both manifests exist; else the cluster's state while it is up (starting, running...),
    failed if it ended with errors, else what the manifests say."""
    if fit is not None and transform is not None:
        return "done"
    if cluster is not None and cluster.active:
        return cluster.state.lower()
    if cluster is not None and cluster.state == "TERMINATED_WITH_ERRORS":
        return "failed"
    return "no manifest" if fit is None and transform is None else "fit only"


def run_row(
    run: str, fit: ManifestRecord | None, transform: ManifestRecord | None, cluster: RunCluster | None = None
) -> list[str]:
    state = run_state(fit, transform, cluster)
    either = fit or transform  # k and the variance kept are the fit's, and the same in its transform
    probe = transform.probe if transform is not None else None
    last = transform or fit
    done = [m for m in (fit, transform) if m is not None]
    return [
        run,
        state,
        _fmt_int(fit.images_featurized if fit else None),
        _fmt_int(either.k if either else None),
        _fmt_pct(either.cumulative_variance_at_k if either else None),
        _fmt_int(transform.images_featurized if transform else None),
        # With the features store: images whose features an earlier run computed, and images this run
        # inferred (what it paid for), over both steps.
        _fmt_int(sum(m.images_reused for m in done) if done else None),
        _fmt_int(sum(m.images_inferred for m in done) if done else None),
        _fmt_pct(probe.accuracy if probe else None),
        last.finished_at if last else "-",
    ]


HEADER = [
    "RUN",
    "STATE",
    "FIT_IMAGES",
    "K",
    "VARIANCE",
    "TEST_IMAGES",
    "REUSED",
    "INFERRED",
    "ACCURACY",
    "FINISHED",
]


def runs(aws: Aws, out: Callable[[str], None] = print) -> int:
    """One line per run: those with a folder under runs/ and those whose cluster EMR still lists (a run
    just started has no folder yet), oldest first."""
    bucket = aws.bucket()
    s3 = aws.s3
    clusters: dict[str, RunCluster] = {}
    for found in reversed(run_clusters(aws)):  # oldest first: a run id's newest cluster wins
        clusters[found.run_id] = found
    ids = sorted(set(run_ids(s3, bucket)) | set(clusters))
    if not ids:
        out(f"no runs under s3://{bucket}/{RUNS_PREFIX} yet")
        return EXIT_OK
    lines = []
    for run in ids:
        fit, transform = (read_manifest(s3, bucket, run, mode) for mode in MODES)
        cluster = clusters.get(run)
        lines.append((_started(cluster, fit, transform), run, run_row(run, fit, transform, cluster)))
    rows = [HEADER, *(row for _, _, row in sorted(lines))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _started(cluster: RunCluster | None, fit: ManifestRecord | None, transform: ManifestRecord | None) -> str:
    """When the run started, as sortable UTC text: its cluster's creation, else its first manifest's start."""
    if cluster is not None and cluster.created is not None:
        return cluster.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = fit or transform
    return first.started_at if first is not None else ""


def _check_run_id(run: str) -> str:
    run = run.strip().strip("/")
    if not run or "/" in run or run in {".", ".."}:
        raise OpsError(f"invalid run id: {run!r}")
    return run


def results(aws: Aws, run: str | None, dest: Path | None, out: Callable[[str], None] = print) -> int:
    """Download the run's manifests, report/ files and the app's model into ``dest``; print the summaries.

    ``run`` defaults to the newest run (ops/clusters.py), the deploy's when EMR knows no run cluster."""
    run = _check_run_id(run or find_run(aws, None).run_id)
    bucket = aws.bucket()
    s3 = aws.s3
    dest = dest or Path("output") / "results" / run
    prefix = f"{RUNS_PREFIX}{run}/"
    keys: list[str] = []
    for mode in MODES:
        for sub in RESULT_FILES[mode]:
            paginator = s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}{mode}/{sub}"):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if not key.endswith("/") and (sub.endswith("/") or key == f"{prefix}{mode}/{sub}"):
                        keys.append(key)
    if not keys:
        known = run_ids(s3, bucket)
        if run not in known:
            listed = ", ".join(known[-10:]) or "none yet"
            raise OpsError(f"run {run} not found under s3://{bucket}/{RUNS_PREFIX} (runs: {listed})")
        raise OpsError(f"run {run} has no manifest or report yet: is it still running? (`make status`)")
    root = dest.resolve()
    for key in keys:
        target = (dest / key[len(prefix) :]).resolve()
        if not target.is_relative_to(root):
            raise OpsError(f"refusing to write {key} outside {dest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    log.info("downloaded %d files from s3://%s/%s to %s", len(keys), bucket, prefix, dest)
    for mode in MODES:
        if f"{prefix}{mode}/{MANIFEST_FILE}" not in keys:
            log.warning("run %s has no %s manifest yet", run, mode)
        summary = dest / mode / "report" / "summary.md"
        if summary.is_file():
            out(f"==> {summary} <==")
            out(summary.read_text(encoding="utf-8").rstrip())
            out("")
    model = dest / "fit" / "model"
    if f"{prefix}fit/model/{CLASSIFIER_FILE}" in keys:
        out(
            f"The app's model: {model / CLASSIFIER_FILE} "
            f"(try: python -m spark_job predict --model {model} PHOTO)"
        )
    elif f"{prefix}fit/{MANIFEST_FILE}" in keys:
        log.warning(
            "run %s has no fit/model/%s (fitted before the app's model was exported)", run, CLASSIFIER_FILE
        )
    out(f"Results of run {run} in {dest}/")
    return EXIT_OK
