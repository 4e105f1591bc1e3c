"""What else is in a survey cutout: field stars and compact galaxies, bright stars, satellite
trails and missing data. Sources are added before the PSF blur (so point sources take the PSF's
shape); scattered light, trails and masks are drawn after it.
"""

from __future__ import annotations

import numpy as np

from gz_experiments.simulate import profiles

STAR, TRAIL, EMPTY, GARBAGE = 1, 2, 3, 4
EDGE = 0.82  # keep point sources off the border: the Fourier-space blur wraps around


def _star_position(g: dict[str, float]) -> tuple[float, float]:
    # A star that *is* the artifact sits near the centre, where the target should be.
    scale = 0.45 if g["morphology"] == 2 else EDGE
    return g["artifact_x"] * scale, g["artifact_y"] * scale


def star_peak(g: dict[str, float]) -> float:
    """Peak surface brightness of the bright star (sky sigmas) after the PSF."""
    return 10 ** (2.0 + 3.0 * g["artifact_strength"])


def add_point_sources(flux: np.ndarray, g: dict[str, float], size: int, rng) -> None:
    """Background stars / compact galaxies, and the core of a bright star, as single pixels."""
    psf_sigma = g["psf_fwhm"] / 2.3548
    to_pixel_value = 2 * np.pi * psf_sigma**2 / (2 / size) ** 2  # peak SB -> pixel value
    n = int(g["n_background"])
    positions = rng.uniform(-EDGE, EDGE, (n, 2))
    peaks = 10 ** rng.uniform(0.5, 2.1, n)
    colours = rng.uniform([0.3, 0.1], [1.2, 0.6], (n, 2))
    sources = [
        (px, py, peak, gr, rz)
        for (px, py), peak, (gr, rz) in zip(positions, peaks, colours, strict=True)
    ]
    if int(g["artifact"]) == STAR:
        sources.append((*_star_position(g), star_peak(g), 0.5, 0.2))
    for px, py, peak, g_r, r_z in sources:
        col = min(int((px + 1) / 2 * size), size - 1)
        row = min(int((1 - py) / 2 * size), size - 1)
        sed = np.array([10 ** (-0.4 * g_r), 1.0, 10 ** (0.4 * r_z)], np.float32)
        flux[:, row, col] += np.float32(peak * to_pixel_value) * sed


def add_after_optics(flux: np.ndarray, g: dict[str, float], x, y, psf_sigma: float) -> None:
    kind = int(g["artifact"])
    if kind == STAR:
        _add_scattered_light(flux, g, x, y, psf_sigma)
    elif kind == TRAIL:
        _add_trail(flux, g, x, y, psf_sigma)


def _add_scattered_light(flux, g, x, y, psf_sigma) -> None:
    """A bright star's extended halo (Moffat wings) and diffraction spikes."""
    sx, sy = _star_position(g)
    dx, dy = x - np.float32(sx), y - np.float32(sy)
    peak = star_peak(g)
    r0 = 4 * psf_sigma
    halo = np.float32(0.02 * peak) * (1 + (dx * dx + dy * dy) * np.float32(1 / r0**2)) ** -1.5
    width = np.float32(max(0.6 * psf_sigma, 1.5 / x.shape[-1]))  # at least ~1 pixel: no aliasing
    spikes = profiles.gaussian_line(dy, width) * (1 + np.abs(dx) * np.float32(1 / r0)) ** -1.5
    spikes = (
        spikes + profiles.gaussian_line(dx, width) * (1 + np.abs(dy) * np.float32(1 / r0)) ** -1.5
    )
    light = halo + np.float32(0.002 * peak) * spikes
    flux += light[None] * np.array([0.8, 1.0, 1.1], np.float32)[:, None, None]


def _add_trail(flux, g, x, y, psf_sigma) -> None:
    """A satellite trail: a straight line across the frame, usually in one band only (the bands
    are exposed at different times), so it shows as a red, green or blue streak."""
    scale = 0.3 if g["morphology"] == 2 else 0.9
    x0, y0 = g["artifact_x"] * scale, g["artifact_y"] * scale
    angle = g["artifact_angle"]
    distance = (x - np.float32(x0)) * np.float32(np.sin(angle)) - (y - np.float32(y0)) * np.float32(
        np.cos(angle)
    )
    line = profiles.gaussian_line(distance, 1.2 * psf_sigma) * np.float32(
        10 ** (1.0 + 1.5 * g["artifact_strength"])
    )
    band = int(g["artifact_band"])
    if band == 3:
        flux += line[None]
    else:
        flux[band] += line


def mask_missing_data(flux: np.ndarray, g: dict[str, float], x, y) -> None:
    """Garbage frames: a region with no data (zeros, a straight edge) and a bright bleed column."""
    if int(g["artifact"]) != GARBAGE:
        return
    size = flux.shape[-1]
    edge = x * np.float32(np.cos(g["artifact_angle"])) + y * np.float32(np.sin(g["artifact_angle"]))
    missing = np.broadcast_to(edge > np.float32(g["artifact_x"] * 0.5), flux.shape[1:])
    flux[:, missing] = 0
    column = min(int((g["artifact_y"] + 1) / 2 * size), size - 1)
    width = max(1, size // 100)
    flux[:, :, column : column + width] += np.float32(640.0)
