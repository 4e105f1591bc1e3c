"""A preview grid of a simulated dataset: a few galaxies per true class with their vote fractions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from gz_experiments.images import is_fits
from gz_experiments.images.fits.stretch import PRESETS, fits_to_uint8
from gz_experiments.schema import get_schema
from gz_experiments.simulate.dataset import CATALOG, TRUTH, folder_of
from gz_experiments.simulate.latents import CLASSES

SHORT = {"smooth": "s", "featured-or-disk": "f", "artifact": "a"}


def preview_grid(dataset: str | Path, per_class: int = 4) -> Figure:
    """Rows = true classes, columns = the first `per_class` galaxies of that class; each title
    gives the first question's vote fractions (s = smooth, f = featured-or-disk, a = artifact)."""
    folder = folder_of(dataset)
    catalog = pd.read_csv(folder / CATALOG, dtype={"id_str": str})
    truth = pd.read_parquet(folder / TRUTH, columns=["id_str", "true_class"])
    table = catalog.merge(truth, on="id_str", validate="one_to_one")
    first = get_schema("gzd5").questions[0]
    classes = [c for c in CLASSES if (table["true_class"] == c).any()]
    figure = Figure(figsize=(1.7 * per_class, 1.9 * len(classes) + 0.4), layout="constrained")
    axes = figure.subplots(len(classes), per_class, squeeze=False)
    for row, name in zip(axes, classes, strict=True):
        examples = table[table["true_class"] == name].head(per_class)
        for ax, (_, galaxy) in zip(row, examples.iterrows(), strict=False):
            ax.imshow(_rgb(folder / galaxy["file_loc"]))
            ax.set_title(_fractions(galaxy, first), fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name, fontsize=9)
    figure.suptitle(
        "simulated galaxies by true class (vote fractions: smooth / featured / artifact)",
        fontsize=9,
    )
    return figure


def _rgb(path: Path) -> np.ndarray:
    """The colour image of a simulated galaxy: its PNG, or its FITS flux stretched as the PNG."""
    if not is_fits(path):
        return np.asarray(Image.open(path).convert("RGB"))
    from gz_experiments.images.fits.read import read_fits  # astropy only for FITS datasets

    settings = PRESETS["simulator"]
    return fits_to_uint8(read_fits(path, settings), settings)


def _fractions(galaxy: pd.Series, question) -> str:
    total = max(float(galaxy[question.total_votes_col]), 1.0)
    parts = [
        f"{SHORT.get(a.name, a.name)} {galaxy[a.label_col] / total:.2f}" for a in question.answers
    ]
    return " ".join(parts) + f" (n={int(galaxy[question.total_votes_col])})"
