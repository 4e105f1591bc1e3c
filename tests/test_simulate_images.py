"""Simulated images look like their class: measured from pixels, as an astronomer would."""

from __future__ import annotations

import numpy as np
import pytest

from gz_experiments.simulate.latents import galaxy, sample_latents
from gz_experiments.simulate.render import render_galaxy

SIZE = 64


@pytest.fixture(scope="module")
def latents():
    return sample_latents(7, 4000)


def _clean(latents, mask, n=10):
    """Up to n bright, resolved, undisturbed galaxies of a kind, alone in the frame."""
    ok = (latents["snr"] > 15) & (latents["r_eff"] > 0.15) & (latents["artifact"] == 0)
    picked = np.flatnonzero(mask & ok)[:n]
    assert len(picked) >= 5
    out = []
    for i in picked:
        g = galaxy(latents, i)
        g["n_background"] = 0
        out.append(render_galaxy(g, SIZE, np.random.default_rng(i)).astype(np.float64).mean(axis=2))
    return out


def _light(image):
    return np.clip(image - np.median(image), 0, None)


def elongation(image):
    """1 - minor/major axis from the second moments of the light."""
    light = _light(image)
    y, x = np.mgrid[: image.shape[0], : image.shape[1]]
    total = light.sum()
    cx, cy = (light * x).sum() / total, (light * y).sum() / total
    cov = np.cov(np.stack([(x - cx).ravel(), (y - cy).ravel()]), aweights=light.ravel())
    small, large = np.linalg.eigvalsh(cov)
    return 1 - np.sqrt(small / large)


def asymmetry(image):
    """The 180-degree rotation residual of the light (CAS asymmetry about the frame centre)."""
    light = _light(image)
    return np.abs(light - light[::-1, ::-1]).sum() / (2 * light.sum())


def azimuthal_structure(image, r_in=4, r_out=18, sectors=16):
    """Spread of the mean light in angular sectors of an annulus, relative to its mean."""
    light = _light(image)
    y, x = np.mgrid[: image.shape[0], : image.shape[1]] + 0.5 - image.shape[0] / 2
    r, theta = np.hypot(x, y), np.arctan2(y, x)
    ring = (r >= r_in) & (r < r_out)
    sector = ((theta[ring] + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
    means = np.bincount(sector, light[ring], sectors) / np.bincount(sector, minlength=sectors)
    return means.std() / means.mean()


def test_edge_on_disks_are_elongated_round_smooth_galaxies_not(latents):
    edge_on = (
        (latents["morphology"] == 1) & (latents["inclination"] > 82) & (latents["interaction"] == 0)
    )
    round_smooth = (
        (latents["morphology"] == 0)
        & (latents["axis_ratio"] > 0.85)
        & (latents["interaction"] == 0)
    )
    e_edge = np.mean([elongation(im) for im in _clean(latents, edge_on)])
    e_round = np.mean([elongation(im) for im in _clean(latents, round_smooth)])
    assert e_edge > 0.5 and e_round < 0.2


def test_smooth_galaxies_are_symmetric_mergers_are_not(latents):
    smooth = (latents["morphology"] == 0) & (latents["interaction"] == 0)
    mergers = (latents["morphology"] < 2) & (latents["interaction"] >= 2)
    a_smooth = np.mean([asymmetry(im) for im in _clean(latents, smooth)])
    a_merger = np.mean([asymmetry(im) for im in _clean(latents, mergers)])
    assert a_smooth < 0.1 and a_merger > 2 * a_smooth


def test_face_on_spirals_have_more_azimuthal_structure_than_smooth_galaxies(latents):
    quiet = latents["interaction"] == 0
    spirals = (
        (latents["arm_strength"] > 0.6)
        & (latents["inclination"] < 40)
        & (latents["bar_strength"] == 0)
    )
    smooth = (latents["morphology"] == 0) & (latents["axis_ratio"] > 0.85)
    s_spiral = np.median([azimuthal_structure(im) for im in _clean(latents, spirals & quiet)])
    s_smooth = np.median([azimuthal_structure(im) for im in _clean(latents, smooth & quiet)])
    assert s_spiral > 2 * s_smooth


@pytest.mark.parametrize("size", [16, 424])
def test_any_size_renders_a_uint8_colour_image(latents, size):
    image = render_galaxy(galaxy(latents, 0), size, np.random.default_rng(0))
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert 0 < image.mean() < 255


def test_png_writer_round_trips_through_pillow(latents):
    import io

    from PIL import Image

    from gz_experiments.simulate.png import encode_png

    image = render_galaxy(galaxy(latents, 1), 33, np.random.default_rng(1))  # odd width
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(decoded), image)
