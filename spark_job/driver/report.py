"""A run's report: explained-variance curve, PC1/PC2 scatter, summary.md (matplotlib, Agg backend).

Local files only (no Spark): the job samples the points, writes the report into a local folder and uploads it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on EMR nodes or CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from spark_job.contract.records import ManifestRecord

log = logging.getLogger(__name__)

SCATTER_MAX_POINTS = 5000


def plot_explained_variance(spectrum: list[float], k: int, target: float | None, path: Path) -> None:
    cumulative = np.cumsum(spectrum)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(
        np.arange(1, len(cumulative) + 1), cumulative, color="tab:blue", label="cumulative explained variance"
    )
    if target is not None:
        ax.axhline(target, color="tab:red", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.axvline(k, color="tab:green", linestyle=":", linewidth=1)
    ax.scatter(
        [k],
        [cumulative[k - 1]],
        color="tab:green",
        zorder=3,
        label=f"chosen k = {k} ({cumulative[k - 1]:.3f})",
    )
    ax.set_xscale("log")
    ax.set_xlabel("number of components k (log scale)")
    ax.set_ylabel("cumulative explained variance")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("PCA on standardized MobileNetV2 features")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_pca_scatter(points: pd.DataFrame, path: Path) -> None:
    """points: columns pc1, pc2, label (null label drawn as 'unlabelled')."""
    labels = points["label"].fillna("(unlabelled)")
    classes = sorted(labels.unique())
    cmap = plt.get_cmap("tab20", max(len(classes), 1))
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for i, cls in enumerate(classes):
        sel = labels == cls
        ax.scatter(points.loc[sel, "pc1"], points.loc[sel, "pc2"], s=10, alpha=0.8, color=cmap(i), label=cls)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(f"First two principal components ({len(points)} images)")
    ax.grid(True, alpha=0.3)
    if len(classes) <= 40:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, markerscale=1.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary_markdown(manifest: ManifestRecord, rejects: list[tuple[str, str]]) -> str:
    """The run in Markdown; `rejects`: the first rejected images (all of them are in rejects/)."""
    m = manifest
    lines = [
        f"# Fruits! pipeline run: {m.mode}",
        "",
        f"- input: `{m.input}`",
        f"- output: `{m.output}`",
        f"- started {m.started_at}, finished {m.finished_at}",
        "",
        "## Images",
        "",
        "| discovered | featurized | rejected | non-image files skipped |",
        "|---:|---:|---:|---:|",
        f"| {m.images_discovered} | {m.images_featurized} | {m.images_rejected} | {m.images_skipped} |",
        "",
        f"Classes ({len(m.classes)}): {', '.join(m.classes) or '(none: unlabelled input)'}",
        "",
        "## Features and PCA",
        "",
        f"- MobileNetV2 (ImageNet, no top, average pool, 1280 floats) at {m.image_size} px; "
        f"weights `{m.weights.source}` sha256 `{m.weights.sha256}`",
        f"- k = {m.k} components keep {m.cumulative_variance_at_k:.4f} of the variance"
        + (f" (target {m.variance_target})" if m.variance_target else ""),
        f"- featurize throughput: {m.throughput_img_s} img/s",
        "",
    ]
    probe = m.probe
    if probe:
        lines += [
            "## Probe (logistic regression on the PCA features)",
            "",
            f"Accuracy **{probe.accuracy:.4f}**, weighted F1 {probe.weighted_f1:.4f} "
            f"on {probe.images} labelled images.",
            "",
            "| class | recall |",
            "|---|---:|",
            *[f"| {cls} | {rec:.3f} |" for cls, rec in probe.per_class_recall.items()],
            "",
        ]
    lines += ["## Timings (s)", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {secs} |" for stage, secs in m.timings_s.items()]
    lines += ["", "## Rejected images", ""]
    if rejects:
        lines += ["| path | reason |", "|---|---|"]
        lines += [f"| `{p}` | {r} |" for p, r in rejects]
        if m.images_rejected > len(rejects):
            lines.append(f"\n({m.images_rejected - len(rejects)} more in `rejects/`)")
    else:
        lines.append("None.")
    if m.skipped_files:
        lines += ["", "## Non-image files skipped", "", *[f"- `{p}`" for p in m.skipped_files]]
    lines += ["", "## Versions", "", *[f"- {k}: {v}" for k, v in m.versions.items()], ""]
    return "\n".join(lines)


def write_report(
    local_dir: Path,
    manifest: ManifestRecord,
    spectrum: list[float],
    points: pd.DataFrame,
    rejects: list[tuple[str, str]],
) -> list[Path]:
    """Write the three report files into local_dir; return their paths."""
    local_dir.mkdir(parents=True, exist_ok=True)
    files = [local_dir / "explained_variance.png", local_dir / "pca_scatter.png", local_dir / "summary.md"]
    plot_explained_variance(spectrum, manifest.k, manifest.variance_target, files[0])
    plot_pca_scatter(points, files[1])
    files[2].write_text(summary_markdown(manifest, rejects), encoding="utf-8")
    log.info("report written: %s", ", ".join(f.name for f in files))
    return files
