"""What a worker process runs: render a batch of galaxies and write their PNGs.

Kept apart from `dataset` so a freshly spawned worker imports NumPy and Pillow, not pandas.
"""

from __future__ import annotations

import numpy as np

from gz_experiments.simulate.latents import galaxy
from gz_experiments.simulate.png import write_png
from gz_experiments.simulate.render import render_galaxy

RENDER_STREAM = 3


def render_batch(task: tuple) -> int:
    """(seed, img_size, first galaxy index, latents of the batch, output paths) -> n written."""
    seed, size, start, latents, paths = task
    for offset, path in enumerate(paths):
        # One stream per galaxy: identical images whichever worker renders it.
        rng = np.random.default_rng([seed, RENDER_STREAM, start + offset])
        write_png(render_galaxy(galaxy(latents, offset), size, rng), path)
    return len(paths)
