"""Figures and tables of an `evaluate.Evaluation`, named the same in every run so runs compare.

Built on `matplotlib.figure.Figure` directly (no pyplot), so no GUI backend or global state.
`figures(evaluation)` maps artifact names to figures:

- `confusion/<question>.png`: most-voted vs predicted answer, all galaxies and confident ones;
- `fractions/<question>.png`: predicted vs volunteer vote fraction per answer (>= 20 votes);
- `coverage/<question>.png`: observed coverage of the highest-density vote-count sets vs the
  nominal level, with the mean achieved mass (where a calibrated model lands).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gz_experiments.evaluation.protocol import COVERAGE_LEVELS, Evaluation, QuestionEvaluation


def _confusion_panel(ax, matrix: np.ndarray, answers: list[str], title: str) -> None:
    # Colour by row (recall per true answer) so rare answers stay visible; print the counts.
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if share[i, j] > 0.6 else "black"
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=colour)
    ticks = range(len(answers))
    ax.set_xticks(ticks, answers, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, answers, fontsize=8)
    ax.set(xlabel="predicted", ylabel="most voted", title=title)


def confusion_figure(result: QuestionEvaluation) -> Figure:
    answers = [a.name for a in result.question.answers]
    size = 2.2 + 0.55 * len(answers)
    fig = Figure(figsize=(2 * size, size))
    m = result.metrics
    panels = (
        (result.confusion, f"all (n={m['n']:.0f}, acc={m['accuracy']:.3f})"),
        (
            result.confusion_confident,
            f"confident (n={m['n_confident']:.0f}, acc={m['accuracy_confident']:.3f})",
        ),
    )
    for i, (matrix, title) in enumerate(panels):
        _confusion_panel(fig.add_subplot(1, 2, i + 1), matrix, answers, title)
    fig.suptitle(result.question.name)
    fig.tight_layout()
    return fig


def fractions_figure(result: QuestionEvaluation) -> Figure:
    answers = result.question.answers
    fig = Figure(figsize=(3 * len(answers), 3.2))
    for i, answer in enumerate(answers):
        ax = fig.add_subplot(1, len(answers), i + 1)
        true = result.true_fractions[:, i]
        pred = result.predicted_fractions[:, i]
        ax.scatter(true, pred, s=4, alpha=0.4)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
        mae = result.metrics.get(f"{answer.name}/mae", float("nan"))
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="volunteer fraction", title=f"{answer.name}")
        ax.text(0.03, 0.92, f"MAE {mae:.3f}", transform=ax.transAxes, fontsize=8)
        if i == 0:
            ax.set_ylabel("predicted fraction")
    fig.suptitle(
        f"{result.question.name} (galaxies with >= 20 votes: {len(result.true_fractions)})"
    )
    fig.tight_layout()
    return fig


def coverage_figure(result: QuestionEvaluation) -> Figure:
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    levels = np.array(COVERAGE_LEVELS)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, label="nominal")
    ax.plot(levels, result.coverage_expected, linestyle="--", label="achieved mass (target)")
    ax.plot(levels, result.coverage_observed, marker="o", markersize=3, label="observed")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal level", ylabel="coverage of true count")
    ax.set_title(f"{result.question.name} (n={result.metrics['n']:.0f})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def figures(evaluation: Evaluation) -> dict[str, Figure]:
    """Artifact file name -> figure, for every question."""
    out = {}
    for result in evaluation.questions:
        name = result.question.name
        out[f"confusion/{name}.png"] = confusion_figure(result)
        out[f"fractions/{name}.png"] = fractions_figure(result)
        out[f"coverage/{name}.png"] = coverage_figure(result)
    return out


SUMMARY_COLUMNS = [
    "n",
    "accuracy",
    "f1",
    "n_confident",
    "accuracy_confident",
    "f1_confident",
    "n_regression",
    "mae",
    "rmse",
    "joint_rmse",
    "coverage_0.8",
    "coverage_expected_0.8",
    "truth_mae",
    "volunteer_floor_mae",
    "truth_mae_ratio",
]


def summary_table(evaluation: Evaluation) -> pd.DataFrame:
    """The compact per-question table (columns absent without truth are left out)."""
    table = evaluation.table()
    return table[[c for c in SUMMARY_COLUMNS if c in table.columns]]


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured markdown table (no `tabulate` dependency)."""
    header = ["question", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = [_cell(value, column, digits) for column, value in row.items()]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _cell(value, column: str, digits: int) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return str(int(value)) if column == "n" or column.startswith("n_") else f"{value:.{digits}f}"
