"""Surface-brightness profiles evaluated on coordinate grids (vectorised float32 NumPy).

Coordinates are in image half-widths. Every profile returns surface brightness per unit area for a
component of total flux 1 (analytically normalised, so flux ratios such as bulge-to-total hold
whatever the image size), except the modulations, which are dimensionless and average to 1.
"""

from __future__ import annotations

from math import comb, exp, lgamma, log, pi, tan

import numpy as np


def rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in a frame rotated by `angle` (radians): x along the new major axis."""
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return x * c + y * s, y * c - x * s


def elliptical_radius(x: np.ndarray, y: np.ndarray, q: float, boxiness: float = 2.0) -> np.ndarray:
    """Radius on ellipses of axis ratio q; boxiness > 2 gives boxy isophotes (a generalised ellipse)."""
    if boxiness == 2.0:
        return np.hypot(x, y / np.float32(q))
    c = np.float32(boxiness)
    return (np.abs(x) ** c + np.abs(y / np.float32(q)) ** c) ** (1 / c)


def sersic_b(n: float) -> float:
    """b_n such that r_e encloses half the light (Ciotti & Bertin 1999 expansion)."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n * n)


def sersic(r: np.ndarray, r_e: float, n: float, q: float) -> np.ndarray:
    """Sérsic profile of unit total flux on ellipses of axis ratio q."""
    b = sersic_b(n)
    log_norm = log(2 * pi * n * q * r_e * r_e) + b + lgamma(2 * n) - 2 * n * log(b)
    scaled = (r * np.float32(1 / r_e)) ** np.float32(1 / n)
    return np.exp(np.float32(b - log_norm) - np.float32(b) * scaled)


def exponential(r: np.ndarray, r_e: float, q: float) -> np.ndarray:
    """Exponential disk of unit flux (a Sérsic n=1 without the power)."""
    h = r_e / sersic_b(1.0)
    return np.exp(r * np.float32(-1 / h)) * np.float32(1 / (2 * pi * h * h * q))


def log_spiral(
    r: np.ndarray,
    theta: np.ndarray,
    *,
    arms: int,
    pitch_deg: float,
    phase: float,
    chirality: int,
    r_ref: float,
    sharpness: int = 3,
) -> np.ndarray:
    """Logarithmic-spiral arm pattern with mean 1: ((1 + cos psi) / 2)^k / E[...].

    psi = m (theta - ln(r / r_ref) / tan(pitch)) + phase: a small pitch winds the arms tightly.
    """
    winding = np.float32(chirality / tan(np.radians(pitch_deg)))
    log_r = np.log(np.maximum(r, np.float32(1e-4)) * np.float32(1 / r_ref))
    psi = np.float32(arms) * (theta - winding * log_r) + np.float32(phase)
    shape = (np.float32(0.5) + np.float32(0.5) * np.cos(psi)) ** sharpness
    mean = comb(2 * sharpness, sharpness) / 4**sharpness
    return shape * np.float32(1 / mean)


def inner_taper(r: np.ndarray, r_in: float) -> np.ndarray:
    """0 at the centre rising to 1 beyond r_in: arms start outside the bulge / bar."""
    return 1 - np.exp(-((r * np.float32(1 / r_in)) ** 2))


def bar(x: np.ndarray, y: np.ndarray, length: float, q: float = 0.25) -> np.ndarray:
    """A flat-topped elongated bar with boxy ends, of unit flux (normalised on the grid given)."""
    rb = elliptical_radius(x, y, q, boxiness=3.0) * np.float32(1 / length)
    profile = np.exp(-(rb**4))
    # Area of exp(-r^4) over a boxy (c=3) ellipse: 2*pi*q*L^2 * Gamma(1.5)/4 * 1.08 (boxy factor).
    area = 2 * pi * q * length * length * exp(lgamma(0.5)) / 4 * 1.08
    return profile * np.float32(1 / area)


def gaussian_line(distance: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-((distance * np.float32(1 / width)) ** 2))
