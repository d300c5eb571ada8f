"""Made-up measurements of the job's runs, for the benchmarks' report and derivation tests."""

from __future__ import annotations

from bench.fit_run import RunMeasurement

FIT_STAGES = (
    "weights",
    "convert",
    "list",
    "store_lookup",
    "store_infer",
    "store_assemble",
    "featurize",
    "fit_pca",
    "project",
    "probe",
    "export_classifier",
    "write_model",
    "report",
)


def measured_run(
    mode: str,
    images: int,
    timings: dict[str, float],
    *,
    whole_run_s: float,
    inferred: int = 0,
    reused: int | None = None,
    driver_mb: float = 160.0,
    jvm_mb: float = 1000.0,
    cpu_s: float | None = None,
) -> RunMeasurement:
    """CPU seconds equal to the wall seconds unless given (per stage: the timings themselves)."""
    manifest = {
        "mode": mode,
        "images_featurized": images,
        "images_inferred": inferred,
        "images_reused": images - inferred if reused is None else reused,
        "images_rejected": 0,
        "timings_s": timings,
        "versions": {"spark": "3.5.x", "ai-edge-litert": "1.x"},
    }
    return RunMeasurement(
        mode=mode,
        whole_run_s=whole_run_s,
        process_s=whole_run_s + 3,
        timings_s=timings,
        manifest=manifest,
        driver_peak_to_featurize_mb=driver_mb,
        driver_peak_mb=driver_mb + 900,
        jvm_peak_mb=jvm_mb,
        worker_peak_mb=200.0,
        cpu_s=whole_run_s if cpu_s is None else cpu_s,
        load_before=1.0,
        load_after=1.5,
        stage_cpu_s=dict(timings),
    )


def linear_fit_timings(images: int, *, probe: float) -> dict[str, float]:
    """A fit's stage times: per-photo stages at 0.1 ms per photo (+1 s each), fixed stages constant."""
    per_image = {name: 1.0 + images * 1e-4 for name in ("list", "store_lookup", "store_assemble")}
    per_image.update({"fit_pca": 2.0 + images * 2e-4, "project": 0.5 + images * 1e-4})
    featurize = per_image["store_lookup"] + per_image["store_assemble"] + 0.01
    return {
        "weights": 0.2,
        "convert": 0.4,
        **per_image,
        "store_infer": 0.01,
        "featurize": featurize,
        "probe": probe,
        "export_classifier": 12.0,
        "write_model": 14.0,
        "report": 1.0,
    }
