"""Render one galaxy's latents as a survey-like g, r, z colour image (uint8 RGB, any size).

Pipeline: components (bulge, disk, arms, bar, companion, tails) -> point sources -> PSF blur (a
Gaussian applied in Fourier space) -> sky + photon noise -> artifacts drawn after the optics
(trails, missing data) -> per-band asinh stretch with z, r, g as R, G, B, as survey colour
images are made (calibrated on the real GZ DECaLS images in ../shared/data: the same sky level,
sky noise and pixel-value quantiles at 128 px). Values before the stretch are surface brightness in units of the
r-band sky noise of one pixel of a 424-px image; the noise per pixel scales with the pixel size, so a
424-px image downsampled to 128 px looks like the 128-px rendering of the same galaxy.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gz_experiments.simulate import artifacts, profiles
from gz_experiments.simulate.latents import EDGE_ON_THICKNESS

REFERENCE_SIZE = 424  # the GZ DECaLS image size: the noise level is defined per pixel of it
# Nominal sky size of an image, for FITS headers only (the simulator has no sky coordinates):
# REFERENCE_SIZE DECaLS pixels of 0.262 arcsec; an image of n px has pixels FIELD_ARCSEC / n.
FIELD_ARCSEC = REFERENCE_SIZE * 0.262
BANDS = ("g", "r", "z")  # the flux planes, in this order
SKY_NOISE = np.array([0.7, 1.0, 1.9], np.float32)  # g, r, z: z is the noisiest band
PHOTON_GAIN = 100.0  # surface brightness at which photon noise equals the sky noise
RGB_SCALE = np.array([0.7, 1.0, 1.5], np.float32)  # z, r, g weights for R, G, B
SKY_LEVEL = 1.1  # residual sky left in survey cutouts: the background is dark grey, not black
STRETCH_SOFTENING = 3.2  # asinh is linear below this many sky sigmas, logarithmic above
STRETCH_MAX = 480.0  # surface brightness that maps to full white
ARM_COLOUR = (0.3, 0.15)  # g-r, r-z of star-forming arms and clumps


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in half-widths: x to the right, y up (broadcastable rows/cols)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1
    return c[None, :], -c[:, None]


@lru_cache(maxsize=8)
def fft_size(size: int) -> int:
    """The smallest 2^a 3^b 5^c >= size: FFTs of 424 (= 8 * 53) are twice as slow as of 432."""
    n = size
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@lru_cache(maxsize=8)
def _frequency_sq(size: int) -> np.ndarray:
    """Squared spatial frequency (cycles / pixel) of the zero-padded real FFT of a size x size image."""
    n = fft_size(size)
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    return (fx**2 + fy**2).astype(np.float32)


def _gaussian_filter(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing of the last two axes in Fourier space, zero-padded to a fast FFT size.

    The convolution is circular, but point sources stay off the border (artifacts.EDGE) and
    galaxy light is faint there, so nothing visible wraps around.
    """
    size = image.shape[-1]
    n = fft_size(size)
    transfer = np.exp(np.float32(-2 * np.pi**2 * sigma_px**2) * _frequency_sq(size))
    smooth = np.fft.irfft2(np.fft.rfft2(image, s=(n, n)) * transfer, s=(n, n))
    return smooth[..., :size, :size].astype(np.float32)


def colour(g_r: float, r_z: float) -> np.ndarray:
    """Relative g, r, z fluxes of a component from its colours (magnitudes), r = 1."""
    return np.array([10 ** (-0.4 * g_r), 1.0, 10 ** (0.4 * r_z)], np.float32)


def render_galaxy(g: dict[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
    """The (size, size, 3) uint8 RGB image of one galaxy (see `latents` for the fields)."""
    return stretch(render_flux(g, size, rng))


def render_flux(g: dict[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
    """The float32 (3, size, size) g, r, z flux of one galaxy, before the stretch (row 0 on top).

    Surface brightness in r-band sky sigmas of one pixel of a REFERENCE_SIZE image, as a survey
    cutout holds calibrated flux; `stretch` turns it into the colour image.
    """
    x, y = grid(size)
    flux = np.zeros((3, size, size), np.float32)
    total = galaxy_total_flux(g)
    if total > 0:
        _add_main_galaxy(flux, g, x, y, total, rng)
        _add_interaction(flux, g, x, y, total)
    artifacts.add_point_sources(flux, g, size, rng)
    psf_sigma = g["psf_fwhm"] / 2.3548
    flux = _gaussian_filter(flux, psf_sigma * size / 2)  # the PSF
    artifacts.add_after_optics(flux, g, x, y, psf_sigma)
    flux = add_noise(flux, g["sky_scale"], size, rng)
    artifacts.mask_missing_data(flux, g, x, y)
    return flux


def galaxy_total_flux(g: dict[str, float]) -> float:
    """Total flux such that the surface brightness near r_eff is about `snr` sky sigmas."""
    if g["artifact"] == 3:  # an empty frame
        return 0.0
    return 2 * np.pi * g["r_eff"] ** 2 * g["snr"]


def _add_main_galaxy(flux, g, x, y, total, rng) -> None:
    xr, yr = profiles.rotate(x, y, g["position_angle"])
    lopsided = _lopsidedness(g, x, y)
    body = colour(g["g_r"], g["r_z"])
    if g["morphology"] == 1:
        _add_disk(flux, g, xr, yr, total, lopsided, rng)
        return
    r = profiles.elliptical_radius(xr, yr, g["axis_ratio"])
    light = profiles.sersic(r, g["r_eff"], g["sersic_n"], g["axis_ratio"]) * np.float32(total)
    flux += (light * lopsided)[None] * body[:, None, None]


def _add_disk(flux, g, xr, yr, total, lopsided, rng) -> None:
    q, r_e = g["axis_ratio"], g["r_eff"]
    bt, bar_frac = g["bulge_fraction"], 0.5 * g["bar_strength"] * (1 - g["bulge_fraction"])
    disk_frac = 1 - bt - bar_frac
    yd = yr * np.float32(1 / q)  # deprojected onto the disk plane
    r = np.hypot(xr, yd)
    disk = profiles.exponential(r, r_e, q) * np.float32(total * disk_frac) * lopsided
    in_arms, arms = _arm_light(g, xr, yd, r, disk, rng)
    flux += (disk * (1 - in_arms))[None] * colour(g["g_r"], g["r_z"])[:, None, None]
    flux += arms[None] * colour(*ARM_COLOUR)[:, None, None]
    if bar_frac > 0:
        xb, yb = profiles.rotate(xr, yd, g["bar_angle"])
        bar = profiles.bar(xb, yb, g["bar_length"] * r_e) * np.float32(total * bar_frac / q)
        flux += bar[None] * colour(g["g_r"] + 0.15, g["r_z"] + 0.05)[:, None, None]
    if bt > 0:
        _add_bulge(flux, g, xr, yr, total * bt)
    if g["inclination"] > 70:
        _add_dust_lane(flux, g, xr, yr)


def _arm_light(g, xd, yd, r, disk, rng) -> tuple[np.ndarray | np.float32, np.ndarray]:
    """(fraction of the disk light moved into arms, that light redistributed along the arms)."""
    if g["arm_strength"] <= 0:
        return np.float32(0), np.zeros_like(disk)
    r_e = g["r_eff"]
    pattern = profiles.log_spiral(
        r,
        np.arctan2(yd, xd),
        arms=int(g["arm_count"]),
        pitch_deg=g["pitch_angle"],
        phase=g["arm_phase"],
        chirality=int(g["chirality"]),
        r_ref=r_e,
    )
    r_in = max(0.35 * r_e, g["bar_length"] * r_e if g["bar_strength"] > 0 else 0.0)
    # Seen nearly edge-on, arms blur together along the line of sight and fade.
    contrast = 0.9 * g["arm_strength"] / (1 + np.exp((g["inclination"] - 72) / 4))
    amplitude = np.float32(contrast) * profiles.inner_taper(r, r_in)
    clumps = clumpy_field(disk.shape[0], 0.015 * r_e / 0.2, rng)
    return amplitude, disk * amplitude * pattern * clumps


def clumpy_field(size: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A lognormal field of mean ~1 in cells of `scale` half-widths: star-forming knots.

    Drawn on a coarse grid and repeated to full size (the PSF blur smooths the cell edges), so a
    knot spans the same fraction of the galaxy at every image size.
    """
    cells = max(1, min(size, round(2 / scale)))
    coarse = rng.standard_normal((cells, cells), dtype=np.float32)
    index = np.arange(size) * cells // size
    return np.exp(np.float32(0.6) * coarse[index][:, index] - np.float32(0.18))


def _add_bulge(flux, g, xr, yr, bulge_flux) -> None:
    # Boxy / peanut bulges (edge-on bars) are flatter-topped and stand out of the disk.
    q_b = max(g["axis_ratio"], 0.75 if g["bulge_boxy"] else 0.6)
    boxiness = 4.0 if g["bulge_boxy"] else 2.0
    r_b = 0.25 * g["r_eff"] + 0.1 * g["r_eff"] * g["bulge_fraction"]
    r = profiles.elliptical_radius(xr, yr, q_b, boxiness)
    light = profiles.sersic(r, r_b, g["bulge_n"], q_b) * np.float32(bulge_flux)
    flux += light[None] * colour(g["g_r"] + 0.25, g["r_z"] + 0.1)[:, None, None]


def _add_dust_lane(flux, g, xr, yr) -> None:
    """Edge-on disks show a dark mid-plane lane, deeper in g than in z."""
    depth = min((g["inclination"] - 70) / 15, 1.0) * 1.2
    h = g["r_eff"] / profiles.sersic_b(1.0)
    thickness = max(g["axis_ratio"], EDGE_ON_THICKNESS) * h * 0.35
    lane = profiles.gaussian_line(yr, thickness) * np.exp(-np.abs(xr) * np.float32(0.5 / h))
    tau = np.float32(depth) * lane
    for band, weight in enumerate((1.3, 1.0, 0.6)):
        flux[band] *= np.exp(-np.float32(weight) * tau)


def _lopsidedness(g, x, y) -> np.ndarray | np.float32:
    """Disturbed galaxies are lopsided: an m=1 brightening growing outward."""
    strength = (0.0, 0.35, 0.6, 0.5)[int(g["interaction"])]
    if strength == 0:
        return np.float32(1)
    xa, _ = profiles.rotate(x, y, g["asymmetry_angle"])
    radial = np.tanh(np.hypot(x, y) * np.float32(1 / (1.5 * g["r_eff"])))
    return 1 + np.float32(strength) * np.tanh(xa * np.float32(1 / g["r_eff"])) * radial


def _add_interaction(flux, g, x, y, total) -> None:
    """Companions and tidal tails of minor / major disturbances and mergers."""
    kind = int(g["interaction"])
    if kind == 0:
        return
    r_e = g["r_eff"]
    ratio = g["companion_flux"] * (0.25, 0.5, 1.0)[kind - 1]
    distance = g["companion_distance"] * (1.3, 1.0, 0.45)[kind - 1]
    cx = distance * np.cos(g["companion_angle"])
    cy = distance * np.sin(g["companion_angle"])
    r_c = r_e * (0.3 + 0.4 * ratio)
    rc = np.hypot(x - np.float32(cx), y - np.float32(cy))
    companion = profiles.sersic(rc, r_c, 2.5, 1.0) * np.float32(total * ratio)
    flux += companion[None] * colour(g["g_r"] + 0.1, g["r_z"])[:, None, None]
    if kind >= 2:
        tails = _tidal_tail(x, y, g, g["asymmetry_angle"])
        tails += _tidal_tail(x - np.float32(cx), y - np.float32(cy), g, g["arm_phase"])
        amount = np.float32(total * 0.25 * g["tail_strength"])
        flux += (tails * amount)[None] * colour(g["g_r"] - 0.1, g["r_z"])[:, None, None]


def _tidal_tail(x, y, g, phase) -> np.ndarray:
    """One long, loosely wound, faint arm of stars flung out by an encounter (unit-ish flux)."""
    r_e = g["r_eff"]
    r = np.hypot(x, y)
    pattern = profiles.log_spiral(
        r,
        np.arctan2(y, x),
        arms=1,
        pitch_deg=40.0,
        phase=phase,
        chirality=int(g["chirality"]),
        r_ref=r_e,
        sharpness=8,
    )
    envelope = profiles.exponential(r, 3 * r_e, 1.0) * profiles.inner_taper(r, 1.5 * r_e)
    return pattern * envelope


def add_noise(flux: np.ndarray, sky_scale: float, size: int, rng) -> np.ndarray:
    """Sky noise per band plus photon noise growing with the signal; per pixel ∝ pixel size."""
    sigma = (SKY_NOISE * np.float32(sky_scale * size / REFERENCE_SIZE))[:, None, None]
    photon = np.sqrt(1 + np.maximum(flux, 0) * np.float32(1 / PHOTON_GAIN))
    return flux + rng.standard_normal(flux.shape, dtype=np.float32) * sigma * photon


def stretch(flux: np.ndarray) -> np.ndarray:
    """Per-band asinh stretch (z, r, g as R, G, B): linear in the noise, logarithmic in the
    galaxy, so faint outskirts show and bright cores saturate to white as in survey images."""
    rgb = flux[::-1] * RGB_SCALE[:, None, None] + np.float32(SKY_LEVEL)
    soft = np.float32(1 / STRETCH_SOFTENING)
    out = np.arcsinh(rgb * soft) * np.float32(255 / np.arcsinh(STRETCH_MAX / STRETCH_SOFTENING))
    return (np.clip(out, 0, 255) + 0.5).astype(np.uint8).transpose(1, 2, 0)
