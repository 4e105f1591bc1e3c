"""What a worker process runs: render a batch of galaxies and write their PNGs or FITS cubes.

Kept apart from `dataset` so a freshly spawned worker imports NumPy and Pillow, not pandas
(and astropy only when it writes FITS).
"""

from __future__ import annotations

import numpy as np

from gz_experiments.simulate.latents import galaxy
from gz_experiments.simulate.png import write_png
from gz_experiments.simulate.render import BANDS, FIELD_ARCSEC, render_flux, stretch

RENDER_STREAM = 3
# The FITS header says what the flux is and how to see it as the PNGs do (<= 72 characters
# each: a COMMENT card's room).
FITS_COMMENTS = (
    "gz_experiments simulator: g, r, z flux before its colour stretch.",
    "Unit: r-band sky noise sigma of one pixel of a 424-px image.",
    "PIXSCALE is nominal: the simulator has no sky coordinates.",
    "As its PNGs: FitsSettings preset simulator (-P fits_preset=simulator).",
)


def render_batch(task: tuple) -> int:
    """(seed, img_size, first galaxy index, latents of the batch, output paths, image format)
    -> n written. "png": the colour image; "fits": the flux it is stretched from."""
    seed, size, start, latents, paths, image_format = task
    for offset, path in enumerate(paths):
        # One stream per galaxy: identical images whichever worker renders it, in either format.
        rng = np.random.default_rng([seed, RENDER_STREAM, start + offset])
        flux = render_flux(galaxy(latents, offset), size, rng)
        if image_format == "fits":
            write_flux(flux, path)
        else:
            write_png(stretch(flux), path)
    return len(paths)


def write_flux(flux: np.ndarray, path: str) -> None:
    from gz_experiments.images.fits.write import write_fits  # astropy only for FITS output

    scale = FIELD_ARCSEC / flux.shape[-1]
    write_fits(path, flux, BANDS, scale, comments=FITS_COMMENTS)
