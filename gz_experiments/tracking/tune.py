"""The MLflow side of a hyperparameter search: one nested child run per Optuna trial.

The parent is the `tune` step's run (the one `mlflow run` opened). Each trial gets a child run
created with an explicit `parent_run_id`, so a trial started by another worker process (which
has no active parent run of its own) still nests under the invocation that started it. Optuna
states map onto MLflow run statuses: COMPLETE -> FINISHED, PRUNED -> KILLED (stopped on purpose),
FAILED -> FAILED; the Optuna state itself is the tag `gz.trial_state`.

No optuna import here: states travel as strings (tuning.search runs the study).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.tracking import MlflowClient

from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import TAG_PREFIX, log_json, log_params_once, log_text

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.tuning.search import TuneResult

RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAILED": "FAILED"}
STATE_TAG = f"{TAG_PREFIX}trial_state"
NUMBER_TAG = f"{TAG_PREFIX}trial_number"


@dataclass
class TrialRun:
    """The child run of one trial; the caller sets `state` before leaving the context."""

    run_id: str
    state: str = "FAILED"


@dataclass(frozen=True)
class MlflowTrials:
    """Trials as nested child runs of the tune run (tuning.search.Trials). Picklable: each
    spawned worker gets a copy and opens its trials' runs itself."""

    parent_run_id: str
    study_name: str

    @contextmanager
    def trial(self, number: int, params: dict[str, Any]) -> Iterator[TrialRun]:
        """A nested child run of the parent holding one trial; ends with the trial's status."""
        # A worker inherits MLFLOW_RUN_ID from `mlflow run`, and start_run() would resume the
        # parent instead of creating a child; the parent is passed explicitly instead.
        os.environ.pop("MLFLOW_RUN_ID", None)
        experiment_id = MlflowClient().get_run(self.parent_run_id).info.experiment_id
        run = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"trial-{number:03d}",
            nested=True,
            parent_run_id=self.parent_run_id,
            tags={NUMBER_TAG: str(number), f"{TAG_PREFIX}study_name": self.study_name},
        )
        trial = TrialRun(run.info.run_id)
        try:
            log_params_once({f"trial.{k}": str(v) for k, v in params.items()})
            yield trial
        finally:
            mlflow.set_tag(STATE_TAG, trial.state)
            mlflow.end_run(status=RUN_STATUS[trial.state])

    def failed(self, run_id: str | None) -> None:
        """Close the child run of a trial whose worker died."""
        if not run_id:
            return
        client = MlflowClient()
        client.set_tag(run_id, STATE_TAG, "FAILED")
        client.set_terminated(run_id, status="FAILED")


def log_tune(result: TuneResult) -> None:
    """On the active (parent) run: study identity, best trial, trial counts, plots, notes."""
    summary, figures, notes = (
        result.summary,
        result.figures,
        result.notes + [f"worker lost: {line}" for line in result.lost_workers],
    )
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
        describe_outcome(
            f"Best value {best['value']:.4f} at trial {best['number']} with "
            + ", ".join(f"{k}={v}" for k, v in best["params"].items())
            + "; trials: "
            + ", ".join(f"{n} {state.lower()}" for state, n in summary["counts"].items())
        )
    log_json(summary, "study/summary.json")
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"study/{name}.png")
    if notes:
        log_text("\n".join(notes) + "\n", "study/notes.txt")
