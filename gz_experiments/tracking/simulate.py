"""Logging a simulated dataset: its catalog path, counts per class and question, a preview."""

from __future__ import annotations

from pathlib import Path

from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_figure, log_file, log_metrics, set_tags


def log_simulate(catalog: Path, metrics: dict[str, float], preview, truth: Path) -> None:
    set_tags({"catalog": str(catalog.resolve())})
    log_metrics(metrics)
    log_figure(preview, "preview.png")
    log_file(catalog, "dataset")
    log_file(truth, "dataset")
    describe_outcome(f"Wrote the catalog {catalog.resolve()} and the simulator's truth.")
