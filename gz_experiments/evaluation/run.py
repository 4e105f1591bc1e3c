"""The evaluate step as a library function: a model and a labelled shard split in, the paper's
protocol out (gz_experiments.evaluation.protocol). No MLflow: tracking/evaluate.py logs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gz_experiments.config import EvaluateConfig
from gz_experiments.errors import UserError
from gz_experiments.evaluation.inputs import load_truth, predict_split, truth_path
from gz_experiments.evaluation.protocol import Evaluation, evaluate_predictions
from gz_experiments.model_spec import ModelSpec
from gz_experiments.shards.manifest import Manifest, load_manifest


@dataclass
class EvaluateResult:
    config: EvaluateConfig
    manifest: Manifest
    evaluation: Evaluation
    truth: Path | None  # the simulator's truth table used, if any

    def summary(self) -> str:
        overall = self.evaluation.overall
        return "\n".join(f"{self.config.split}/{k}: {v:.4f}" for k, v in overall.items())


def check_inputs(config: EvaluateConfig) -> None:
    if not config.model_uri:
        raise UserError("no model given: pass -P model_uri=runs:/<run id>/model or models:/...")
    if not config.shard_dir:
        raise UserError("no shard_dir given: pass -P shard_dir=<folder with manifest.json>")
    load_manifest(config.shard_dir)


def run_evaluate(config: EvaluateConfig, model, spec: ModelSpec) -> EvaluateResult:
    """Predict the split with MC dropout (config.sampling) and evaluate it."""
    manifest = load_manifest(config.shard_dir)
    predictions = predict_split(model, spec, manifest, config.split, config.sampling)
    truth_file = truth_path(manifest, config.truth)
    truth = None
    if truth_file is not None:
        truth = load_truth(truth_file, predictions.ids, manifest.schema)
    evaluation = evaluate_predictions(
        manifest.schema, predictions.counts, predictions.concentrations, truth
    )
    evaluation.overall.update(joint_baseline(manifest, predictions.counts))
    return EvaluateResult(config, manifest, evaluation, truth_file)


def joint_baseline(manifest: Manifest, counts) -> dict[str, float]:
    """Kaggle's RMSE of always predicting the training split's mean vote fractions, and the
    model's RMSE as a share of it (the bar an image-blind model sets)."""
    import numpy as np

    from gz_experiments.evaluation.protocol import joint_rmse

    if "train" not in manifest.split_names:
        return {}
    schema = manifest.schema
    train = schema.fractions_within_questions(manifest.votes("train"))
    mean_joint = schema.joint_fractions(train).mean(axis=0)
    # Per-question fractions whose joint fractions are that mean (a mean of tree-consistent
    # joint vectors is itself tree-consistent, so this is exact).
    mean = schema.fractions_within_questions(mean_joint)
    baseline = joint_rmse(schema, counts, np.broadcast_to(mean, counts.shape))
    return {"baseline_joint_rmse": baseline["joint_rmse"]} if "joint_rmse" in baseline else {}
