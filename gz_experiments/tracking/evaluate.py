"""Logging an evaluate result: the protocol's metrics, plots and tables, and the data it saw.

Metric keys are `<split>/<question>/<metric>` and `<split>/<metric>`; artifacts go under
`evaluation/<split>/` with the same names in every run (see evaluation/plots.py), so runs compare
side by side in the MLflow UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gz_experiments.evaluation.plots import figures, markdown_table, summary_table
from gz_experiments.tracking.datasets import log_shard_split
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_figure, log_metrics, log_text, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.evaluation.run import EvaluateResult


def log_evaluate(result: EvaluateResult) -> dict[str, float]:
    config, evaluation = result.config, result.evaluation
    set_tags(
        {
            "model_uri": config.model_uri,
            "data_manifest_sha256": result.manifest.sha256,
            "schema": result.manifest.schema.name,
            "truth": result.truth or "",
        }
    )
    log_shard_split(result.manifest, config.split, context="evaluation")
    metrics = evaluation.metrics(config.split)
    log_metrics(metrics)
    folder = f"evaluation/{config.split}"
    for name, figure in figures(evaluation).items():
        log_figure(figure, f"{folder}/{name}")
    table = summary_table(evaluation)
    log_text(table.to_csv(float_format="%.6g"), f"{folder}/metrics.csv")
    log_text(markdown_table(table), f"{folder}/metrics.md")
    log_text(evaluation.table().to_csv(float_format="%.6g"), f"{folder}/all_metrics.csv")
    describe_outcome(result.summary())
    return metrics
