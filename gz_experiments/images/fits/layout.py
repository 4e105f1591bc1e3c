"""Where the bands of a FITS file are, from its headers alone, and which of them fill the channels.

Layouts: one 2-D image (one band); one 3-D cube with the band axis first or last; or several
2-D image HDUs, one band each. Band names come from the header (see `_cube_names`,
`_plane_name`); `select_bands` matches them to `FitsSettings.bands`. Each problem is an
ImageError with a one-line reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from astropy.io import fits

from gz_experiments.images.fits.stretch import FitsSettings
from gz_experiments.images.raster import ImageError, Source

MAX_BANDS = 10  # a cube axis this short (and shorter than the other two) holds bands, not pixels
VALID_BITPIX = (8, 16, 32, 64, -32, -64)
CELESTIAL_CTYPES = ("RA", "DEC", "GLON", "GLAT", "ELON", "ELAT")
# EXTNAMEs that name a role, not a band (astropy and fpack write COMPRESSED_IMAGE by default).
GENERIC_EXTNAMES = ("PRIMARY", "COMPRESSED_IMAGE", "IMAGE", "SCI")


@dataclass(frozen=True)
class Band:
    """Where one band of the file lives: an image HDU, and a plane of it if it is a cube."""

    name: str
    hdu: int
    plane: int | None = None  # index along the band axis of a cube; None for a 2-D image
    axis: int = 0  # numpy axis of the cube that holds the bands: 0 or 2


def file_bands(hdus: list, source: Source) -> list[Band]:
    """Every band the file holds, in file order, from the headers alone."""
    images = [(i, hdu) for i, hdu in enumerate(hdus) if _has_image(hdu)]
    if not images:
        found = ", ".join(type(h).__name__ for h in hdus)
        raise ImageError(source, f"no image HDU with data (found: {found})")
    for i, hdu in images:
        bitpix = hdu.header.get("BITPIX")
        if bitpix not in VALID_BITPIX:
            raise ImageError(
                source,
                f"unsupported BITPIX {bitpix} in HDU {i} (FITS allows 8, 16, 32, 64, -32, -64)",
            )
    if len(images) == 1:
        return _bands_of_one_hdu(*images[0], source)
    for i, hdu in images:
        if len(hdu.shape) != 2:
            raise ImageError(
                source,
                f"HDU {i} has shape {hdu.shape}; with several image HDUs each must be one 2-D band",
            )
    return [Band(_plane_name(hdu.header), i) for i, hdu in images]


def select_bands(bands: list[Band], settings: FitsSettings, source: Source) -> list[Band]:
    """The file band of each channel.

    A file with a single unnamed band (a plain 2-D image) is taken to be every requested band.
    """
    if not settings.bands:
        if len(settings.scales) not in (1, len(bands)):
            raise ImageError(
                source,
                f"the file has {len(bands)} bands but the settings give "
                f"{len(settings.scales)} scales",
            )
        return bands
    if len(bands) == 1 and not bands[0].name:
        return bands * len(settings.bands)
    found = {b: _find(bands, b) for b in settings.bands}
    missing = [b for b, matches in found.items() if not matches]
    if missing:
        has = ", ".join(b.name or "(unnamed)" for b in bands)
        raise ImageError(
            source,
            f"bands {', '.join(missing)} not in the file; it has {has} "
            "(from BAND, FILTER, BANDS, BAND0.., EXTNAME keywords)",
        )
    for name, matches in found.items():
        if len(matches) > 1:
            raise ImageError(source, f"band {name} appears {len(matches)} times in the file")
    return [found[b][0] for b in settings.bands]


def plane_shape(shape: tuple[int, ...], band: Band) -> tuple[int, ...]:
    """The 2-D shape of one band of an HDU of `shape`."""
    return shape if band.plane is None else tuple(s for a, s in enumerate(shape) if a != band.axis)


def _has_image(hdu) -> bool:
    if isinstance(hdu, fits.GroupsHDU) or not hdu.is_image:
        return False
    return hdu.header.get("NAXIS", 0) > 0 and 0 not in hdu.shape


def _bands_of_one_hdu(i: int, hdu, source: Source) -> list[Band]:
    shape = hdu.shape
    if len(shape) == 2:
        return [Band(_plane_name(hdu.header), i)]
    if len(shape) != 3:
        raise ImageError(
            source,
            f"image has {len(shape)} dimension(s), shape {shape}; expected 2 (one band) or 3 "
            "(a cube of bands)",
        )
    names = _cube_names(hdu.header)
    axis = _band_axis(hdu.header, shape, len(names))
    if axis is None:
        raise ImageError(
            source,
            f"cannot tell which axis of the cube {shape} holds the bands (no celestial CTYPEs, "
            "no band names, no short first or last axis)",
        )
    if names and len(names) != shape[axis]:
        raise ImageError(
            source, f"the header names {len(names)} bands {names} but the cube has {shape[axis]}"
        )
    names = names or ("",) * shape[axis]
    return [Band(name, i, plane, axis) for plane, name in enumerate(names)]


def _band_axis(header, shape: tuple[int, ...], n_names: int) -> int | None:
    """The numpy axis (0 or 2) of a cube that holds the bands, or None if it cannot be told.

    1. WCS: the two axes whose CTYPE is celestial (RA/DEC...) are the spatial ones (FITS axis k is
       numpy axis 3 - k). 2. The axis whose length is the number of band names in the header.
    3. The axis of length <= MAX_BANDS shorter than both others (first or last only).
    """
    spatial = {
        k
        for k in (1, 2, 3)
        if str(header.get(f"CTYPE{k}", "")).upper().startswith(CELESTIAL_CTYPES)
    }
    if spatial in ({1, 2}, {2, 3}):
        return 0 if spatial == {1, 2} else 2
    by_names = [a for a in (0, 2) if shape[a] == n_names]
    if n_names and len(by_names) == 1:
        return by_names[0]
    by_shape = [
        a for a in (0, 2) if shape[a] <= MAX_BANDS and shape[a] < min(shape[1], shape[2 - a])
    ]
    return by_shape[0] if len(by_shape) == 1 else None


def _cube_names(header) -> tuple[str, ...]:
    """Band names of a cube: BAND0.. (or BAND1..), else BANDS, as the Legacy Surveys viewer's
    FITS cutouts write them (BANDS='grz', BAND0='g', ...; legacysurvey/imagine map/views.py).

    BANDS is split at commas / semicolons / spaces if it has any, else one letter per band ('grz').
    """
    for first in (0, 1):
        names = []
        while isinstance(header.get(f"BAND{first + len(names)}"), str):
            names.append(header[f"BAND{first + len(names)}"].strip())
        if names:
            return tuple(names)
    bands = header.get("BANDS")
    if not isinstance(bands, str) or not bands.strip():
        return ()
    bands = bands.strip()
    return (
        tuple(p for p in re.split(r"[\s,;]+", bands) if p)
        if re.search(r"[\s,;]", bands)
        else tuple(bands)
    )


def _plane_name(header) -> str:
    """Band name of a 2-D image: BAND, FILTER, a one-band BANDS / BAND0, else a specific EXTNAME."""
    for key in ("BAND", "FILTER"):
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    names = _cube_names(header)
    if len(names) == 1:
        return names[0]
    extname = header.get("EXTNAME")
    if isinstance(extname, str) and extname.strip().upper() not in GENERIC_EXTNAMES + ("",):
        return extname.strip()
    return ""


def _find(bands: list[Band], name: str) -> list[Band]:
    """The file bands called `name`: exact matches, else matches ignoring case.

    Exact first because case can matter (Johnson R is not SDSS r); the fallback because EXTNAME is
    conventionally upper case (astropy upper-cases it), so EXTNAME 'Z' must still find band z.
    """
    exact = [b for b in bands if b.name == name]
    return exact or [b for b in bands if b.name.lower() == name.lower()]
