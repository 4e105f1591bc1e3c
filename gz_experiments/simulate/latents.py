"""Latent parameters of simulated galaxies: what each galaxy *is*, before anyone looks at it.

Lengths are in units of the image half-width (the frame spans -1..1), so a galaxy looks the same at
64 px and at 424 px, only sharper. Brightness (`snr`) is the surface brightness at the effective
radius in units of the r-band sky noise of one pixel of a 424-px image (the size volunteers saw).

Latents are a dict of equal-length NumPy arrays (categories as small ints, names in the tuples
below). They are drawn chunk by chunk, each chunk from its own stream of the master seed and always
at full length, so galaxy i is the same whatever `n` and however many workers render it.
"""

from __future__ import annotations

import numpy as np

CHUNK = 64  # galaxies per random stream; a constant so that galaxy i never depends on n
LATENT_STREAM = 1

MORPHOLOGIES = ("smooth", "disk", "artifact")
ARTIFACTS = ("none", "star", "trail", "empty", "garbage")
INTERACTIONS = ("none", "minor", "major", "merger")
CATEGORIES = {"morphology": MORPHOLOGIES, "artifact": ARTIFACTS, "interaction": INTERACTIONS}

# Mix of the whole population, tuned so that first-question vote fractions resemble the real
# GZ DECaLS ones (benchmarks/bench_simulate.py prints both).
MORPHOLOGY_P = (0.44, 0.51, 0.05)
INTERACTION_P = (0.80, 0.09, 0.06, 0.05)
ARM_COUNT_P = {1: 0.06, 2: 0.50, 3: 0.20, 4: 0.12, 5: 0.07, 6: 0.05}
EDGE_ON_THICKNESS = 0.12  # intrinsic axis ratio of a disk seen exactly edge-on


def sample_latents(seed: int, n: int) -> dict[str, np.ndarray]:
    """Latents of galaxies 0..n-1 for a master seed."""
    n_chunks = -(-n // CHUNK)
    chunks = [
        sample_chunk(np.random.default_rng([seed, LATENT_STREAM, c])) for c in range(n_chunks)
    ]
    if not chunks:
        return {k: v[:0] for k, v in sample_chunk(np.random.default_rng(0)).items()}
    return {k: np.concatenate([c[k] for c in chunks])[:n] for k in chunks[0]}


def take(latents: dict[str, np.ndarray], index) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in latents.items()}


def galaxy(latents: dict[str, np.ndarray], i: int) -> dict[str, float]:
    """One galaxy's latents as plain Python numbers (what the renderer takes)."""
    return {k: v[i].item() for k, v in latents.items()}


def sample_chunk(rng: np.random.Generator, n: int = CHUNK) -> dict[str, np.ndarray]:
    """One chunk of galaxies. Every field is drawn for every galaxy (fixed stream consumption)."""
    morphology = rng.choice(len(MORPHOLOGIES), n, p=MORPHOLOGY_P)
    disk, artifact_class = morphology == 1, morphology == 2
    out = {"morphology": morphology}
    out.update(_size_and_brightness(rng, n, artifact_class))
    out.update(_shape(rng, n, disk))
    out.update(_disk_structure(rng, n, disk))
    out.update(_interaction(rng, n, artifact_class))
    out.update(_artifacts(rng, n, artifact_class))
    out.update(_colours(rng, n, disk))
    out["n_background"] = rng.poisson(4.0, n)
    return out


def _loguniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def _size_and_brightness(rng, n, artifact_class) -> dict[str, np.ndarray]:
    r_eff = _loguniform(rng, 0.07, 0.3, n)
    # Survey cutouts are scaled to the galaxy, so a galaxy small on the sky gets a relatively
    # large PSF: the resolution (r_eff / psf) is what makes some galaxies genuinely hard.
    psf_fwhm = _loguniform(rng, 0.015, 0.05, n)
    snr = _loguniform(rng, 3.0, 120.0, n)
    snr = np.where(artifact_class, snr * 0.3, snr)  # whatever hides under an artifact is faint
    return {"r_eff": r_eff, "psf_fwhm": psf_fwhm, "snr": snr, "sky_scale": rng.uniform(0.8, 1.3, n)}


def _shape(rng, n, disk) -> dict[str, np.ndarray]:
    # Smooth galaxies: mostly round, a tail of flattened (cigar-shaped) ones.
    smooth_q = 1.0 - 0.78 * rng.beta(1.4, 2.6, n)
    # Disks are randomly oriented: cos(i) uniform; the projected axis ratio follows.
    cos_i = rng.uniform(0.0, 1.0, n)
    disk_q = np.sqrt(cos_i**2 + EDGE_ON_THICKNESS**2 * (1.0 - cos_i**2))
    return {
        "sersic_n": np.where(disk, 1.0, 2.0 + 4.0 * rng.beta(2.0, 2.0, n)),
        "axis_ratio": np.where(disk, disk_q, smooth_q),
        "inclination": np.where(disk, np.degrees(np.arccos(cos_i)), 0.0),
        "position_angle": rng.uniform(0.0, np.pi, n),
    }


def _disk_structure(rng, n, disk) -> dict[str, np.ndarray]:
    bulgeless = rng.uniform(size=n) < 0.12
    bulge_fraction = np.where(bulgeless, 0.0, 0.85 * rng.beta(1.6, 3.0, n))
    spiral = rng.uniform(size=n) < 0.72
    barred = rng.uniform(size=n) < 0.45
    bar_strength = np.where(barred, rng.uniform(0.15, 1.0, n), 0.0)
    # Boxy/peanut bulges are bars seen edge-on.
    boxy = (bar_strength > 0.45) & (bulge_fraction > 0.05) & (rng.uniform(size=n) < 0.7)
    counts = np.array(list(ARM_COUNT_P))
    return {
        "bulge_fraction": np.where(disk, bulge_fraction, 1.0),
        "bulge_n": rng.uniform(1.5, 4.0, n),
        "bulge_boxy": disk & boxy,
        "arm_strength": np.where(disk & spiral, rng.uniform(0.2, 1.0, n), 0.0),
        "arm_count": rng.choice(counts, n, p=list(ARM_COUNT_P.values())),
        "pitch_angle": rng.uniform(7.0, 38.0, n),
        "arm_phase": rng.uniform(0.0, 2 * np.pi, n),
        "chirality": rng.choice([-1, 1], n),
        "bar_strength": np.where(disk, bar_strength, 0.0),
        "bar_length": rng.uniform(0.6, 1.2, n),
        "bar_angle": rng.uniform(0.0, np.pi, n),
    }


def _interaction(rng, n, artifact_class) -> dict[str, np.ndarray]:
    interaction = rng.choice(len(INTERACTIONS), n, p=INTERACTION_P)
    return {
        "interaction": np.where(artifact_class, 0, interaction),
        "companion_flux": rng.uniform(0.2, 1.0, n),
        "companion_distance": rng.uniform(0.25, 0.6, n),
        "companion_angle": rng.uniform(0.0, 2 * np.pi, n),
        "tail_strength": rng.uniform(0.3, 1.0, n),
        "asymmetry_angle": rng.uniform(0.0, 2 * np.pi, n),
    }


def _artifacts(rng, n, artifact_class) -> dict[str, np.ndarray]:
    main_kind = rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.15, 0.15])
    u = rng.uniform(size=n)
    contaminant = np.where(u < 0.05, 1, np.where(u < 0.065, 2, 0))  # a star or trail nearby
    kind = np.where(artifact_class, main_kind, contaminant)
    strength = np.where(artifact_class, rng.uniform(0.6, 1.0, n), rng.uniform(0.1, 0.45, n))
    return {
        "artifact": kind,
        "artifact_strength": np.where(kind > 0, strength, 0.0),
        "artifact_x": rng.uniform(-0.9, 0.9, n),
        "artifact_y": rng.uniform(-0.9, 0.9, n),
        "artifact_angle": rng.uniform(0.0, np.pi, n),
        "artifact_band": rng.choice([0, 1, 2, 3], n),  # 3 = all bands
    }


def _colours(rng, n, disk) -> dict[str, np.ndarray]:
    # g-r and r-z colours (magnitudes): red spheroids and bulges, bluer disks, blue arms.
    return {
        "g_r": np.where(disk, 0.55, 0.78) + rng.normal(0.0, 0.06, n),
        "r_z": np.where(disk, 0.35, 0.45) + rng.normal(0.0, 0.05, n),
    }


CLASSES = ("smooth", "disk", "edge-on", "spiral", "barred-spiral", "merger", "artifact")


def true_class(latents: dict[str, np.ndarray]) -> np.ndarray:
    """One readable class per galaxy (for counts and previews; the labels are the votes)."""
    disk = latents["morphology"] == 1
    spiral = disk & (latents["arm_strength"] > 0)
    conditions = [
        latents["morphology"] == 2,
        latents["interaction"] >= 2,
        disk & (latents["inclination"] > 75),
        spiral & (latents["bar_strength"] >= 0.4),
        spiral,
        disk,
    ]
    names = ["artifact", "merger", "edge-on", "barred-spiral", "spiral", "disk"]
    return np.select(conditions, names, default="smooth")
