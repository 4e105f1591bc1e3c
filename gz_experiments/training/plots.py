"""Figures of a training history (Keras names: loss, val_loss, loss/<question>, ...).

Built on `matplotlib.figure.Figure` directly (no pyplot), so no GUI backend or global state.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def _epochs(values: list[float]) -> list[int]:
    return list(range(1, len(values) + 1))


def loss_curves(history: dict[str, list[float]], baseline: float | None = None) -> Figure:
    """Total training and validation loss per epoch, with the constant-prediction baseline."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if history.get(key):
            ax.plot(_epochs(history[key]), history[key], marker="o", label=label)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="baseline (mean fractions)")
    ax.set(xlabel="epoch", ylabel="loss per galaxy (sum over questions)", title="Loss")
    ax.legend()
    fig.tight_layout()
    return fig


def per_question_curves(history: dict[str, list[float]], questions: list[str]) -> Figure:
    """One panel per question: its training and validation loss per epoch."""
    n_cols = 4
    n_rows = -(-len(questions) // n_cols)
    fig = Figure(figsize=(3.2 * n_cols, 2.6 * n_rows))
    for i, question in enumerate(questions):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        for key, label in ((f"loss/{question}", "train"), (f"val_loss/{question}", "val")):
            if history.get(key):
                ax.plot(_epochs(history[key]), history[key], label=label)
        ax.set_title(question, fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.supxlabel("epoch")
    fig.supylabel("loss per galaxy")
    fig.tight_layout()
    return fig
