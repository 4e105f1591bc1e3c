"""Logging a simulated dataset: its catalog path, counts per class and question, a preview."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gz_experiments.simulate.preview import preview_grid
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_figure, log_file, log_metrics, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.simulate.dataset import SimulateResult


def log_simulate(result: SimulateResult) -> None:
    set_tags({"catalog": str(result.catalog.resolve())})
    log_metrics(result.metrics)
    log_figure(preview_grid(result.catalog), "preview.png")
    log_file(result.catalog, "dataset")
    log_file(result.truth, "dataset")
    describe_outcome(f"Wrote the catalog {result.catalog.resolve()} and the simulator's truth.")
