"""Evaluate a logged model on a shard split and log the protocol's metrics, plots and tables.

Metric keys are `<split>/<question>/<metric>` and `<split>/<metric>`; artifacts go under
`evaluation/<split>/` with the same names in every run (see evaluation_plots.py), so runs compare
side by side in the MLflow UI.
"""

from __future__ import annotations

from gz_experiments.config import EvaluateConfig
from gz_experiments.errors import UserError
from gz_experiments.evaluate import Evaluation, evaluate_predictions
from gz_experiments.evaluation_inputs import load_truth, predict_split, truth_path
from gz_experiments.evaluation_plots import figures, markdown_table, summary_table
from gz_experiments.manifest import load_manifest
from gz_experiments.tracking.models import load_galaxy_model
from gz_experiments.tracking.runs import log_figure, log_metrics, log_text, set_tags


def evaluate_model(config: EvaluateConfig) -> Evaluation:
    """Inside the active run: predict the split, evaluate it, log everything."""
    if not config.shard_dir:
        raise UserError("no shard_dir given: pass -P shard_dir=<folder with manifest.json>")
    manifest = load_manifest(config.shard_dir)
    model, spec = load_galaxy_model(config.model_uri)
    predictions = predict_split(
        model, spec, manifest, config.split, n_samples=config.n_samples,
        mc_mode=config.mc_mode, batch_size=config.batch_size, seed=config.seed,
    )  # fmt: skip
    truth_file = truth_path(manifest, config.truth)
    truth = None
    if truth_file is not None:
        truth = load_truth(truth_file, predictions.ids, manifest.schema)
    evaluation = evaluate_predictions(
        manifest.schema, predictions.counts, predictions.concentrations, truth
    )
    set_tags(
        {
            "model_uri": config.model_uri,
            "data_manifest_sha256": manifest.sha256,
            "schema": manifest.schema.name,
            "truth": truth_file or "",
        }
    )
    log_evaluation(evaluation, config.split)
    return evaluation


def log_evaluation(evaluation: Evaluation, split: str) -> dict[str, float]:
    metrics = evaluation.metrics(split)
    log_metrics(metrics)
    folder = f"evaluation/{split}"
    for name, figure in figures(evaluation).items():
        log_figure(figure, f"{folder}/{name}")
    table = summary_table(evaluation)
    log_text(table.to_csv(float_format="%.6g"), f"{folder}/metrics.csv")
    log_text(markdown_table(table), f"{folder}/metrics.md")
    log_text(evaluation.table().to_csv(float_format="%.6g"), f"{folder}/all_metrics.csv")
    return metrics
