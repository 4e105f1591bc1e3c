"""Logging active learning: an acquire result (the top-k table, its grid, the skipped galaxies,
counts and scores), and the closed loop of benchmarks/bench_active_learning.py (curves per round,
the summary, the learning-curve plot)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gz_experiments.acquisition.plots import learning_curves
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import (
    log_figure,
    log_file,
    log_file_as,
    log_metrics,
    log_text,
    set_tags,
)

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.acquisition.loop import LoopResult
    from gz_experiments.acquisition.run import AcquireResult

ARTIFACT = "acquisition"  # acquisition.parquet / acquisition.csv at the run's artifact root
PLOTS = "plots"  # plots/top_galaxies.png


def log_acquire(result: AcquireResult) -> None:
    report = result.report
    standard = f"{ARTIFACT}{result.table.suffix}"
    log_file_as(result.table, standard)
    log_file(result.skipped_table)
    if result.grid is not None:
        log_file(result.grid, PLOTS)
    metrics = {
        "n_ranked": report.n_predicted,
        "n_skipped": len(report.skipped),
        "n_inputs": report.n_inputs,
        "n_selected": result.n_selected,
        "mean_score": result.mean_score,
        "galaxies_per_second": report.n_inputs / max(result.seconds, 1e-9),
    }
    if result.n_selected:
        scores = result.selected_scores
        metrics |= {"selected_max_score": scores[0], "selected_min_score": scores[-1]}
        metrics["selected_mean_score"] = float(scores.mean())
    log_metrics(metrics)
    set_tags(
        {
            "model_uri": result.config.model_uri,
            "input": result.config.input,
            "schema": result.spec.schema.name,
            "acquisition": result.config.acquisition,
            "questions": ",".join(result.questions),
        }
    )
    describe_outcome(result.summary())


# ---- the closed loop ------------------------------------------------------------------------


def log_loop_round(row: dict) -> None:
    """One training round of one strategy and seed, at step = labelled galaxies."""
    prefix = f"{row['strategy']}/seed_{row['seed']}"
    metrics = {f"{prefix}/{name}": row[name] for name in ("test_loss", "truth_mae", "epochs")}
    log_metrics(metrics, step=int(row["n_labelled"]))


def log_loop(result: LoopResult, report: str) -> None:
    """Mean curves (step = labelled galaxies), how many labels each strategy needed to reach
    random's final mean loss and its share of random's labels, the curves table, the plot."""
    metrics = ["test_loss", "truth_mae"]
    metrics += [c for c in result.curves.columns if c.startswith("test_loss/")]
    means = result.curves.groupby(["strategy", "n_labelled"])[metrics].mean()
    for (strategy, n_labelled), values in means.iterrows():
        log_metrics({f"{strategy}/{k}": v for k, v in values.items()}, step=int(n_labelled))
    summary = {"baseline_test_loss": result.baseline_loss}
    final = result.config.n_labelled_final
    for strategy in result.curves["strategy"].unique():
        if strategy == "random" or "random" not in set(result.curves["strategy"]):
            continue
        for metric in metrics:
            needed = result.labels_to_match(strategy, metric)
            if not math.isnan(needed):
                summary[f"{strategy}/labels_to_match_random_{metric}"] = needed
                summary[f"{strategy}/label_share_{metric}"] = needed / final
    log_metrics(summary)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "curves.csv"
        result.curves.to_csv(table, index=False)
        log_file(table)
    log_text(report, "report.txt")
    log_figure(learning_curves(result.curves, result.baseline_loss), "plots/learning_curves.png")
