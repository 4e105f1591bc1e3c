"""Image grids of galaxies found in a representation (matplotlib `Figure`, no pyplot).

- `neighbour_grid`: the query galaxy first, then its neighbours with their distances;
- `anomaly_grid`: the most unusual galaxies with their scores, most unusual first.

Images are shown as the model reads them (its stored size, colour or greyscale).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

COLUMNS = 5
PANEL_INCHES = 1.9


def _grid(images: list[np.ndarray | None], titles: list[str], heading: str) -> Figure:
    rows = max(1, math.ceil(len(images) / COLUMNS))
    # Constrained layout leaves room for each panel's two-line title and the heading.
    fig = Figure(figsize=(COLUMNS * PANEL_INCHES, rows * (PANEL_INCHES + 0.4) + 0.4),
                 layout="constrained")  # fmt: skip
    fig.suptitle(heading, fontsize=10)
    for i, (image, title) in enumerate(zip(images, titles, strict=True)):
        ax = fig.add_subplot(rows, COLUMNS, i + 1)
        ax.set_axis_off()
        ax.set_title(title, fontsize=7)
        if image is None:
            ax.text(0.5, 0.5, "image not\nreadable", ha="center", va="center", fontsize=7)
            continue
        pixels = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
        if pixels.shape[-1] == 1:
            ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(pixels)
    return fig


def _short(id_str: str, width: int = 22) -> str:
    return id_str if len(id_str) <= width else "…" + id_str[-(width - 1) :]


def neighbour_grid(
    query: str, query_image: np.ndarray | None, ids: list[str], distances, images: dict
) -> Figure:
    """The query then its neighbours, nearest first; `images`: id_str -> image (or absent)."""
    panels = [query_image, *(images.get(i) for i in ids)]
    titles = [f"query\n{_short(query)}"]
    titles += [f"{rank}. {_short(i)}\nd = {d:.3g}" for rank, (i, d) in
               enumerate(zip(ids, distances, strict=True), start=1)]  # fmt: skip
    return _grid(panels, titles, f"nearest neighbours of {query}")


def anomaly_grid(ids: list[str], scores, images: dict, method: str) -> Figure:
    """The most unusual galaxies, most unusual first."""
    panels = [images.get(i) for i in ids]
    titles = [f"{rank}. {_short(i)}\nscore {s:.3g}" for rank, (i, s) in
              enumerate(zip(ids, scores, strict=True), start=1)]  # fmt: skip
    return _grid(panels, titles, f"most unusual galaxies ({method} anomaly score)")
