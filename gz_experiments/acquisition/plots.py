"""Figures of active learning (no pyplot): the PNG grid of the galaxies an acquisition chose, as
the model saw them, and the closed loop's learning curves."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def top_grid(images: Sequence[np.ndarray], ids: Sequence[str], scores: Sequence[float],
             title: str) -> Figure:  # fmt: skip
    """Images (S, S, C) in [0, 1], best first, each titled with its rank, id and score."""
    n = len(images)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(1.9 * cols, 2.1 * rows + 0.4), layout="constrained")
    fig.suptitle(title, fontsize=9)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        image = np.clip(np.asarray(images[i], dtype=np.float32), 0, 1)
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image)
        # IAU names run to ~20 characters: small type keeps them on one line.
        ax.set_title(f"{i + 1}. {ids[i]}\n{scores[i]:.4g}", fontsize=6)
    return fig


def learning_curves(curves: pd.DataFrame, baseline_loss: float) -> Figure:
    """Held-out loss and truth MAE against labelled galaxies: thin lines per seed, thick means,
    and random acquisition's final mean as the level to reach."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = (("test_loss", "held-out loss (summed DM NLL)"), ("truth_mae", "MAE vs true p"))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for i, (strategy, runs) in enumerate(curves.groupby("strategy", sort=False)):
            colour = f"C{i}"
            for _, seed_run in runs.groupby("seed"):
                ax.plot(seed_run["n_labelled"], seed_run[metric], color=colour, lw=0.6, alpha=0.4)
            mean = runs.groupby("n_labelled")[metric].mean()
            ax.plot(mean.index, mean.to_numpy(), "o-", color=colour, lw=2, label=strategy)
            if strategy == "random":
                ax.axhline(mean.iloc[-1], color=colour, ls="--", lw=0.8, label="random, final")
        if metric == "test_loss" and np.isfinite(baseline_loss):
            ax.axhline(baseline_loss, color="grey", ls=":", lw=1, label="image-blind baseline")
        ax.set(xlabel="labelled galaxies", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
