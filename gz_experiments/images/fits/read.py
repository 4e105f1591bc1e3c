"""Reading FITS flux (astropy.io.fits) and decoding it to the pixels a PNG would give.

    flux = read_fits("J0001.fits.fz", FitsSettings.preset("decals"))       # FluxImage
    pixels = decode_fits("J0001.fits.fz", 300, greyscale=True, settings=settings)

- Orientation: FITS stores the bottom row first (y grows up, north up in survey cutouts); images
  store the top row first. read_fits flips rows so flux[0] is the top row, as in the survey's
  colour images (GZ DECaLS flipped its FITS the same way); write_fits flips back.
- Bad pixels (NaN, inf, BLANK): counted and replaced by the band's sky (median of its finite
  pixels); more than `max_bad_fraction` of a band -> ImageError.
- Sizes come from the headers and are checked before any data is read (too many values, bands
  of unequal shapes, truncated data); a damaged file is an ImageError, never a crash.
"""

from __future__ import annotations

import io
import math
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from PIL import Image

from gz_experiments.images.files import read_head, read_regular
from gz_experiments.images.fits.gunzip import inflate_fits
from gz_experiments.images.fits.layout import Band, file_bands, plane_shape, select_bands
from gz_experiments.images.fits.stretch import PRESETS, FitsSettings, FluxImage, fits_to_uint8
from gz_experiments.images.formats import GZIP_MAGIC
from gz_experiments.images.raster import DEFAULT_MAX_PIXELS, ImageError, Source, stored_pixels

# What astropy, gzip and zlib raise on a damaged file; our own ImageErrors pass through untouched.
UNREADABLE = "unreadable FITS (not FITS, corrupt or truncated)"
READ_ERRORS = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, zlib.error)


def read_fits(
    source: Source,
    settings: FitsSettings = PRESETS["decals"],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FluxImage:
    """The flux of the bands `settings.bands` asks for, float32 (H, W, C) in channel order.

    A file with a single unnamed band (a plain 2-D image) is taken to be every requested band:
    it is replicated to all channels (with `bands=()` it stays one channel, i.e. greyscale).
    Header sizes are checked against `max_pixels` (all values of the HDUs to read) before any data
    is read. Raises ImageError with a one-line reason for anything unusable.
    """
    handle, file_size = _open_source(source, max_pixels)
    with warnings.catch_warnings():
        # astropy warns of truncation on open; _check_before_reading rejects it with a reason.
        warnings.filterwarnings("ignore", message="File may have been truncated")
        try:
            hdul = fits.open(handle, memmap=False)
        except READ_ERRORS as exc:
            raise ImageError(source, f"{UNREADABLE}: {_one_line(exc)}") from None
        with hdul:
            try:
                hdus = list(hdul)  # parses every header (and reads no data)
                bands = file_bands(hdus, source)
            except READ_ERRORS as exc:
                raise ImageError(source, f"{UNREADABLE}: {_one_line(exc)}") from None
            chosen = select_bands(bands, settings, source)
            _check_before_reading(hdus, chosen, max_pixels, file_size, source)
            return _read_bands(hdus, chosen, settings, source)


def decode_fits(
    source: Source,
    img_size: int,
    greyscale: bool,
    settings: FitsSettings = PRESETS["decals"],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """uint8 (img_size, img_size, 1 if greyscale else 3), as raster.decode_raster gives for a PNG.

    One channel becomes grey RGB; 2 or more than 3 channels have no RGB image (ImageError).
    """
    return decode_fits_counted(source, img_size, greyscale, settings, max_pixels)[0]


def decode_fits_counted(
    source: Source,
    img_size: int,
    greyscale: bool,
    settings: FitsSettings = PRESETS["decals"],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[np.ndarray, int]:
    """(decode_fits's pixels, NaN/inf/blank pixels filled in its worst band)."""
    flux = read_fits(source, settings, max_pixels)
    pixels = fits_to_uint8(flux, settings)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    elif pixels.shape[-1] != 3:
        raise ImageError(
            source, f"{pixels.shape[-1]} bands make no RGB image; choose 1 or 3 with `bands`"
        )
    # (H, W, 3) uint8 -> RGB, then grey and resize exactly as for a PNG
    return stored_pixels(Image.fromarray(pixels), img_size, greyscale), max(flux.bad_pixels)


def _open_source(source: Source, max_pixels: int) -> tuple[Any, int | None]:
    """(what fits.open takes, the byte size to check for truncation).

    Gzipped FITS is inflated here, only through its last declared HDU (fits.gunzip: a gzip bomb
    stops early), never by astropy, which would inflate the whole stream first.
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(source, "file not found")
        if read_head(path, len(GZIP_MAGIC)) != GZIP_MAGIC:
            return str(path), path.stat().st_size
        data = read_regular(path)
    if data.startswith(GZIP_MAGIC):
        # Values are at most 8 bytes (BITPIX -64): more declared data cannot fit max_pixels.
        data = inflate_fits(data, 8 * max_pixels, source)
    return io.BytesIO(data), len(data)


def _check_before_reading(hdus, chosen: list[Band], max_pixels, file_size, source) -> None:
    """Sizes from the headers: too many pixels, bands of unequal shapes, truncated data."""
    needed = sorted({b.hdu for b in chosen})
    total = sum(math.prod(hdus[i].shape) for i in needed)
    if total > max_pixels:
        shapes = " + ".join("x".join(map(str, hdus[i].shape)) for i in needed)
        raise ImageError(source, f"too large: {total} pixels ({shapes}) > max_pixels {max_pixels}")
    sizes = {b.name or str(b.hdu): plane_shape(hdus[b.hdu].shape, b) for b in chosen}
    if len(set(sizes.values())) > 1:
        raise ImageError(source, f"bands differ in shape: {sizes}")
    for i in needed:
        # Uncompressed data must fit in the file; a CompImageHDU's is checked as it is decompressed.
        if isinstance(hdus[i], fits.CompImageHDU):
            continue
        end = hdus[i].fileinfo()["datLoc"] + hdus[i].size
        if end > file_size:
            raise ImageError(
                source, f"truncated file: HDU {i} needs {end} bytes, the file has {file_size}"
            )


def _read_bands(hdus, chosen: list[Band], settings: FitsSettings, source: Source) -> FluxImage:
    data, planes = {}, {}
    for band in chosen:
        key = (band.hdu, band.plane)
        if key in planes:  # a replicated band is read and cleaned once
            continue
        if band.hdu not in data:
            data[band.hdu] = _data(hdus[band.hdu], band.hdu, source)
        plane = (
            data[band.hdu] if band.plane is None else np.take(data[band.hdu], band.plane, band.axis)
        )
        planes[key] = _fill_bad(plane, band.name or f"HDU {band.hdu}", settings, source)
    channels = [planes[(b.hdu, b.plane)] for b in chosen]
    flux = np.stack([p for p, _ in channels], axis=-1)[::-1]  # FITS rows run bottom to top
    return FluxImage(
        flux=np.ascontiguousarray(flux),
        bands=tuple(b.name for b in chosen),
        bad_pixels=tuple(n for _, n in channels),
    )


def _data(hdu, index: int, source: Source) -> np.ndarray:
    """The HDU's pixels as native float32 (astropy applies BSCALE/BZERO, BLANK becomes NaN)."""
    try:
        return np.asarray(hdu.data, dtype=np.float32)
    except READ_ERRORS as exc:
        raise ImageError(
            source, f"truncated or corrupt data in HDU {index}: {_one_line(exc)}"
        ) from None


def _fill_bad(
    plane: np.ndarray, name: str, settings: FitsSettings, source: Source
) -> tuple[np.ndarray, int]:
    """(plane with NaN / inf replaced by the band's sky, how many were replaced)."""
    bad = ~np.isfinite(plane)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return plane, 0
    if n_bad == plane.size:
        raise ImageError(source, f"all pixels of band {name} are NaN/inf/blank")
    if n_bad / plane.size > settings.max_bad_fraction:
        raise ImageError(
            source,
            f"{n_bad / plane.size:.0%} of the pixels of band {name} are NaN/inf/blank "
            f"(max_bad_fraction {settings.max_bad_fraction:.0%})",
        )
    # The median of a cutout is its sky: a neutral fill that neither adds light nor punches holes.
    filled = plane.copy()
    filled[bad] = np.median(plane[~bad])
    return filled, n_bad


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
