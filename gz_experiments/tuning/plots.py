"""A finished (or partly finished) study as a JSON summary and matplotlib figures.

Part of the Optuna side (with tuning.py): the figures are Optuna's own matplotlib plots, logged
as PNGs on the parent run (plotly is not a dependency).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")  # plots are written to files; never open a window from a worker

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

STATE_NAMES = {
    TrialState.COMPLETE: "COMPLETE",
    TrialState.PRUNED: "PRUNED",
    TrialState.FAIL: "FAILED",
}


def state_name(state: TrialState) -> str:
    """Optuna's state as tagged on the MLflow runs (FAIL is spelled FAILED, like MLflow)."""
    return STATE_NAMES.get(state, state.name)


def summarise(
    study: optuna.Study, storage: str, run_id_attr: str, fail_attr: str
) -> dict[str, Any]:
    """Counts by state, the best trial, and one row per trial (with its MLflow child run id)."""
    rows = [
        {
            "number": t.number,
            "state": state_name(t.state),
            "value": t.value if t.value is not None and math.isfinite(t.value) else None,
            "params": t.params,
            "run_id": t.user_attrs.get(run_id_attr),
            "last_epoch": t.last_step,
            "fail_reason": t.user_attrs.get(fail_attr),
        }
        for t in study.get_trials(deepcopy=False)
    ]
    counts = {name: 0 for name in ("COMPLETE", "PRUNED", "FAILED", "RUNNING")}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    best = min(complete, key=lambda r: r["value"]) if complete else None
    return {
        "study_name": study.study_name,
        "storage": storage,
        "direction": "minimize best validation loss",
        "counts": counts,
        "best": best,
        "trials": rows,
    }


def study_figures(study: optuna.Study) -> tuple[dict[str, Any], list[str]]:
    """name -> Figure for the plots the study supports, and notes for the ones it cannot."""
    trials = study.get_trials(deepcopy=False)
    n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    plots = {
        "optimization_history": (optuna_plots.plot_optimization_history, 1),
        "parallel_coordinate": (optuna_plots.plot_parallel_coordinate, 1),
        "param_importances": (optuna_plots.plot_param_importances, 2),
    }
    figures, notes = {}, []
    for name, (plot, needed) in plots.items():
        if n_complete < needed:
            notes.append(f"{name}: skipped, needs {needed} complete trials, study has {n_complete}")
            continue
        figure, problem = _draw(plot, study)
        if figure is None:
            notes.append(f"{name}: skipped, {problem}")
        else:
            figures[name] = figure
    if any(t.intermediate_values for t in trials):
        figure, _ = _draw(optuna_plots.plot_intermediate_values, study)
        if figure is not None:
            figures["intermediate_values"] = figure  # the per-epoch curves the pruner judged
    return figures, notes


def _draw(plot, study: optuna.Study):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is flagged experimental
        try:
            axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            # e.g. importances when every complete trial has the same value
            return None, f"{type(exc).__name__}: {exc}"
    figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
    figure.set_size_inches(10, 6)  # Optuna's default size clips the axis labels
    figure.tight_layout()
    return figure, None


def close(figures: dict[str, Any]) -> None:
    for figure in figures.values():
        plt.close(figure)
