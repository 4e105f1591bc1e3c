"""The MLflow side of a hyperparameter search: one nested child run per Optuna trial.

The parent is the `tune` step's run (the one `mlflow run` opened). Each trial gets a child run
created with an explicit `parent_run_id`, so a trial started by another worker process (which
has no active parent run of its own) still nests under the invocation that started it. Optuna
states map onto MLflow run statuses: COMPLETE -> FINISHED, PRUNED -> KILLED (stopped on purpose),
FAILED -> FAILED; the Optuna state itself is the tag `gz.trial_state`.

No optuna import here: states travel as strings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from gz_experiments.tracking.runs import TAG_PREFIX, log_json, log_params_once, log_text

RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAILED": "FAILED"}
STATE_TAG = f"{TAG_PREFIX}trial_state"
NUMBER_TAG = f"{TAG_PREFIX}trial_number"


@dataclass
class TrialRun:
    """The child run of one trial; the caller sets `state` before leaving the context."""

    run_id: str
    state: str = "FAILED"


def detach_from_launcher_run() -> None:
    """Forget the run `mlflow run` handed this process through MLFLOW_RUN_ID.

    A worker process inherits that variable, and `mlflow.start_run()` would resume the parent
    instead of creating a child; the parent is passed explicitly instead.
    """
    os.environ.pop("MLFLOW_RUN_ID", None)


@contextmanager
def trial_run(
    parent_run_id: str, trial_number: int, params: dict[str, Any], study_name: str
) -> Iterator[TrialRun]:
    """A nested child run of `parent_run_id` holding one trial; ends with the trial's status."""
    experiment_id = MlflowClient().get_run(parent_run_id).info.experiment_id
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"trial-{trial_number:03d}",
        nested=True,
        parent_run_id=parent_run_id,
        tags={NUMBER_TAG: str(trial_number), f"{TAG_PREFIX}study_name": study_name},
    )
    trial = TrialRun(run.info.run_id)
    try:
        log_params_once({f"trial.{k}": str(v) for k, v in params.items()})
        yield trial
    finally:
        mlflow.set_tag(STATE_TAG, trial.state)
        mlflow.end_run(status=RUN_STATUS[trial.state])


def mark_failed(run_id: str | None) -> None:
    """Close the child run of a trial whose worker died (found stale by Optuna's heartbeat)."""
    if not run_id:
        return
    client = MlflowClient()
    client.set_tag(run_id, STATE_TAG, "FAILED")
    client.set_terminated(run_id, status="FAILED")


def log_study(summary: dict[str, Any], figures: dict[str, Any], notes: list[str]) -> None:
    """On the active (parent) run: study identity, best trial, trial counts, plots, notes."""
    mlflow.set_tags(
        {
            f"{TAG_PREFIX}study_name": summary["study_name"],
            f"{TAG_PREFIX}storage": summary["storage"],
        }
    )
    counts = {f"n_trials_{state.lower()}": n for state, n in summary["counts"].items()}
    mlflow.log_metrics({k: float(v) for k, v in counts.items()})
    best = summary.get("best")
    if best is not None:
        mlflow.log_metric("best_value", best["value"])
        mlflow.set_tags(
            {
                f"{TAG_PREFIX}best_trial_number": str(best["number"]),
                f"{TAG_PREFIX}best_run_id": best["run_id"] or "",
            }
        )
        log_params_once({f"best.{k}": str(v) for k, v in best["params"].items()})
    log_json(summary, "study/summary.json")
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"study/{name}.png")
    if notes:
        log_text("\n".join(notes) + "\n", "study/notes.txt")
