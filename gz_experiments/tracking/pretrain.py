"""Logging the `pretrain` pipeline on its parent run: child run ids, the combined catalog and
tree, the per-campaign test metrics, the summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_metrics, log_text, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.pretrain import PretrainResult


def log_pretrain(result: PretrainResult, summary: str) -> None:
    set_tags({f"{step}_run_id": run.run_id for step, run in result.steps.items()})
    set_tags({f"{step}_reused": run.reused for step, run in result.steps.items()})
    set_tags({"catalog": result.catalog, "tree_file": result.tree_file,
              "model_uri": result.model_uri, "registered_model": result.registered_uri})  # fmt: skip
    metrics = result.headline_metrics()
    log_metrics(metrics)
    log_text(summary, "summary.txt")
    describe_outcome(
        f"Pretrained {result.registered_uri} on the derived tree {result.tree_file}; test split: "
        + "; ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
    )
