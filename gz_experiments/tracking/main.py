"""Logging the `main` pipeline on its parent run: child run ids, headline metrics, summary."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import pandas as pd

from gz_experiments.evaluation.plots import markdown_table
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import download_artifact, log_metrics, log_text, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.finished_run import FinishedRun
    from gz_experiments.pipeline import PipelineResult

TABLE_COLUMNS = ("n", "accuracy", "accuracy_confident", "mae", "coverage_0.8", "truth_mae_ratio")


def evaluation_table(run: FinishedRun, split: str) -> str:
    """The evaluate run's per-question table, narrowed to what fits a terminal."""
    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifact(run.run_id, f"evaluation/{split}/metrics.csv", tmp)
        table = pd.read_csv(path, index_col=0)
    return markdown_table(table[[c for c in TABLE_COLUMNS if c in table.columns]])


def log_main(result: PipelineResult, summary: str) -> None:
    set_tags({f"{step}_run_id": run.run_id for step, run in result.steps.items()})
    set_tags({f"{step}_reused": run.reused for step, run in result.steps.items()})
    set_tags({"model_uri": result.model_uri, "registered_model": result.registered_uri})
    log_metrics(result.headline_metrics())
    log_text(summary, "summary.txt")
    describe_outcome(
        "Headline metrics (test split): "
        + "; ".join(f"{k} {v:.4f}" for k, v in result.headline.items())
    )
