"""Writing flux as a FITS band cube with a Legacy-Surveys-style header (the simulator, tests):
`write_fits("J0001.fits", flux_grz, ("g", "r", "z"), pixel_scale_arcsec=0.262)`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits


def write_fits(
    path: str | Path,
    flux: np.ndarray,
    band_names: Sequence[str],
    pixel_scale_arcsec: float,
    compress: bool = False,
    *,
    unit: str = "",
    comments: Sequence[str] = (),
) -> Path:
    """Write flux (B, H, W) or (H, W, B) (row 0 = top) as a float32 band cube; returns the path.

    One band is written as a plain 2-D image. The header names the bands as the Legacy Surveys
    cutouts do (BANDS, BAND0..), PIXSCALE in arcsec/pixel, BUNIT = `unit`, and `comments`.
    `.fits.gz` is gzipped by astropy; `compress=True` or `.fz` writes a tile-compressed
    CompImageHDU (GZIP_2 without quantisation: lossless for floats, unlike the default RICE).
    The shape is read band-first when both ends match the band count.
    """
    names = list(band_names)
    if (
        not names
        or len(set(names)) != len(names)
        or not all(re.fullmatch(r"[^\s,;]+", n) for n in names)
    ):
        raise ValueError(f"band names must be unique, non-empty, without spaces or commas: {names}")
    cube = _band_first(np.asarray(flux, np.float32), len(names))
    # FITS row 1 is the bottom of the picture.
    data = np.ascontiguousarray(cube[:, ::-1] if len(names) > 1 else cube[0, ::-1])
    header = _write_header(names, pixel_scale_arcsec, unit, comments)
    path = Path(path)
    if compress or path.name.lower().endswith(".fz"):
        hdu = fits.CompImageHDU(data, header, compression_type="GZIP_2", quantize_level=0)
        hdul = fits.HDUList([fits.PrimaryHDU(), hdu])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header)])
    hdul.writeto(path, overwrite=True)
    return path


def _band_first(flux: np.ndarray, n: int) -> np.ndarray:
    if flux.ndim == 2 and n == 1:
        return flux[None]
    if flux.ndim == 3 and flux.shape[0] == n:
        return flux
    if flux.ndim == 3 and flux.shape[-1] == n:
        return flux.transpose(2, 0, 1)
    raise ValueError(
        f"flux of shape {flux.shape} does not hold {n} bands on its first or last axis"
    )


def _write_header(names, pixel_scale_arcsec, unit, comments) -> fits.Header:
    header = fits.Header()
    if len(names) == 1:
        header["BAND"] = names[0]
    # Legacy Surveys style: BANDS='grz' for one-letter names (commas otherwise) and BAND0, BAND1...
    header["BANDS"] = ("" if all(len(n) == 1 for n in names) else ",").join(names)
    for i, name in enumerate(names):
        header[f"BAND{i}"] = name
    header["PIXSCALE"] = (float(pixel_scale_arcsec), "[arcsec/pixel]")
    if unit:
        header["BUNIT"] = unit
    for line in comments:
        header["COMMENT"] = line
    return header
