"""FITS cutouts -> the same uint8 pixels the pipeline stores for PNGs.

    settings = FitsSettings.preset("decals")
    pixels = decode_fits("J0001.fits.fz", img_size=424, greyscale=True, settings=settings)

A survey cutout is flux in a few bands; a shard stores uint8 RGB. `read_fits` reads the flux with
astropy.io.fits, `fits_to_uint8` applies a per-band asinh stretch (how survey colour JPEGs and the
simulator's PNGs are made), and `decode_fits` takes that RGB image through raster.decode_image's
Pillow steps, so the greyscale mean and the LANCZOS resize are exactly those of a PNG. `FitsSettings` is stored in the
shard manifest and the model spec, so prediction reads FITS exactly as training did.

Conventions (all in the docstrings below):

- Channel order: `FitsSettings.bands` names the band of each channel, channel 0 = R, 1 = G, 2 = B.
  ("z", "r", "g") is the DECaLS / Legacy Surveys colour convention (reddest band as red); () takes
  the file's bands in file order.
- Orientation: FITS stores the bottom row first (y grows up, north up in survey cutouts); images
  store the top row first. read_fits flips rows so flux[0] is the top row, as in the survey's
  colour images (GZ DECaLS flipped its FITS the same way); write_fits flips back.
- Layouts: one 2-D image (one band); one 3-D cube with the band axis first or last; or several
  2-D image HDUs, one band each. Band names come from the header (see `_cube_names`, `_plane_name`).
- Bad pixels (NaN, inf, BLANK): counted and replaced by the band's sky (median of its finite
  pixels); more than `max_bad_fraction` of a band -> ImageError.
- Every problem is an ImageError (from raster) whose one-line `.reason` lands in rejected.csv.

No TensorFlow here: shard workers import this module.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from PIL import Image

from gz_experiments.errors import UserError
from gz_experiments.images.raster import GREY_MATRIX, ImageError, Source

FITS_SUFFIXES = tuple(b + z for b in (".fits", ".fit", ".fts") for z in ("", ".gz", ".fz"))
FITS_MAGIC = b"SIMPLE  ="  # the first card of every FITS file
GZIP_MAGIC = b"\x1f\x8b"
# 2**25 values = 128 MiB as float32: a 3-band 3300-px cutout fits, a decompression bomb does not.
DEFAULT_MAX_PIXELS = 2**25
MAX_BANDS = 10  # a cube axis this short (and shorter than the other two) holds bands, not pixels
VALID_BITPIX = (8, 16, 32, 64, -32, -64)
CELESTIAL_CTYPES = ("RA", "DEC", "GLON", "GLAT", "ELON", "ELAT")
# EXTNAMEs that name a role, not a band (astropy and fpack write COMPRESSED_IMAGE by default).
GENERIC_EXTNAMES = ("PRIMARY", "COMPRESSED_IMAGE", "IMAGE", "SCI")
# What astropy, gzip and zlib raise on a damaged file; our own ImageErrors pass through untouched.
UNREADABLE = "unreadable FITS (not FITS, corrupt or truncated)"
READ_ERRORS = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, zlib.error)


@dataclass(frozen=True)
class FitsSettings:
    """How flux in FITS bands becomes uint8 RGB (defaults: the `decals` preset).

    Per channel c (band `bands[c]`), with v = flux * scales[c] + offset:

        level = 255 * (asinh(v / softening) - asinh(black / softening))
                    / (asinh(white / softening) - asinh(black / softening))

    clipped to [0, 255] and rounded half up: v <= black is black, v >= white is white.
    """

    # Band of channel 0 (R), 1 (G), 2 (B). () = the file's bands in file order.
    bands: tuple[str, ...] = ("z", "r", "g")
    # Flux -> stretch units, one per channel (or one for all channels).
    scales: tuple[float, ...] = (1 / 0.019, 1 / 0.014, 1 / 0.008)
    offset: float = 0.0  # added after scaling: a sky pedestal so the background is not black
    softening: float = 1.0  # asinh is linear below about this many units, logarithmic above
    black: float = -0.5  # v mapped to 0
    white: float = 300.0  # v mapped to 255
    # GZ DECaLS DR1 dropped cutouts with > 20% bad pixels in any band (Willett's downloader).
    max_bad_fraction: float = 0.2

    def __post_init__(self):
        if isinstance(self.bands, str):  # tuple("W1") would silently become ("W", "1")
            raise UserError(f"FITS settings: bands must be a list of names, not {self.bands!r}")
        object.__setattr__(self, "bands", tuple(self.bands))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        # Floats throughout, so settings read back from JSON serialise (and hash) the same way.
        for name in ("offset", "softening", "black", "white", "max_bad_fraction"):
            object.__setattr__(self, name, float(getattr(self, name)))
        problems = _settings_problems(self)
        if problems:
            raise UserError(f"invalid FITS settings: {'; '.join(problems)}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FitsSettings:
        """A named preset (see PRESETS), with some fields replaced."""
        if name not in PRESETS:
            raise UserError(f"unknown FITS preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), so a JSON round trip gives an equal dict."""
        data = asdict(self)
        return {**data, "bands": list(self.bands), "scales": list(self.scales)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitsSettings:
        # Every field is required: a default filled in here could differ from what trained the model.
        known = {f.name for f in fields(cls)}
        missing, unknown = sorted(known - set(data)), sorted(set(data) - known)
        if missing or unknown:
            raise UserError(f"FITS settings: missing fields {missing}, unknown fields {unknown}")
        return cls(**data)


def _settings_problems(s: FitsSettings) -> list[str]:
    problems = []
    if not all(isinstance(b, str) and b.strip() == b and b for b in s.bands):
        problems.append(f"bands must be non-empty names, got {s.bands}")
    if len(set(s.bands)) != len(s.bands):
        problems.append(f"bands repeat: {s.bands}")
    if not s.scales or not all(math.isfinite(x) and x > 0 for x in s.scales):
        problems.append(f"scales must be positive numbers, got {s.scales}")
    elif s.bands and len(s.scales) not in (1, len(s.bands)):
        problems.append(f"{len(s.scales)} scales for {len(s.bands)} bands (give 1 or one per band)")
    if not s.softening > 0:
        problems.append(f"softening must be > 0, got {s.softening}")
    if not s.white > s.black:
        problems.append(f"white ({s.white}) must be above black ({s.black})")
    if not 0 <= s.max_bad_fraction < 1:
        problems.append(f"max_bad_fraction must be in [0, 1), got {s.max_bad_fraction}")
    return problems


PRESETS: dict[str, FitsSettings] = {
    # GZ DECaLS (DR5) subject images: Dustin Lang's DECaLS DR1/DR2 colour-image stretch with the
    # constants of zooniverse/decals `get_dr2_style_image` (Walmsley et al. 2022, MNRAS 509, 3966):
    # flux in nanomaggies divided by g 0.008, r 0.014, z 0.019; asinh with softening 1; black at
    # -0.5, white at 300. Not reproduced: their optional "desaturate" (a cross-band mixing of
    # single-colour pixels) and their final truncation to uint8 (we round: within 1 level).
    "decals": FitsSettings(),
    # gz_experiments.simulate.render.stretch: RGB_SCALE, SKY_LEVEL, STRETCH_SOFTENING, STRETCH_MAX
    # (tests/test_fits.py checks they still agree); flux in r-band sky sigmas of a 424-px image.
    "simulator": FitsSettings(
        bands=("z", "r", "g"),
        scales=(0.7, 1.0, 1.5),
        offset=1.1,
        softening=3.2,
        black=0.0,
        white=480.0,
    ),
}


@dataclass(frozen=True)
class FluxImage:
    """What read_fits found: flux per channel, ready for the stretch."""

    flux: np.ndarray  # float32 (H, W, C), row 0 at the top, bad pixels replaced by the sky
    bands: tuple[str, ...]  # band of each channel ("" where the file names none)
    bad_pixels: tuple[int, ...]  # NaN / inf / BLANK pixels replaced, per channel


@dataclass(frozen=True)
class _Band:
    """Where one band of the file lives: an image HDU, and a plane of it if it is a cube."""

    name: str
    hdu: int
    plane: int | None = None  # index along the band axis of a cube; None for a 2-D image
    axis: int = 0  # numpy axis of the cube that holds the bands: 0 or 2


def is_fits(source: Source) -> bool:
    """A FITS path by its suffix (.fits, .fit, .fts, each optionally .gz / .fz), or FITS bytes."""
    if isinstance(source, bytes | bytearray):
        head = bytes(source[:2880])
        if head.startswith(GZIP_MAGIC):
            try:  # only the first card is inflated: cheap even for a large file
                head = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(
                    head, len(FITS_MAGIC)
                )
            except zlib.error:
                return False
        return head.startswith(FITS_MAGIC)
    return str(source).lower().endswith(FITS_SUFFIXES)


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
    handle, file_size = _open_source(source)
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
                bands = _file_bands(hdus, source)
            except READ_ERRORS as exc:
                raise ImageError(source, f"{UNREADABLE}: {_one_line(exc)}") from None
            chosen = _select(bands, settings, source)
            _check_before_reading(hdus, chosen, max_pixels, file_size, source)
            return _read_bands(hdus, chosen, settings, source)


def fits_to_uint8(flux_image: FluxImage, settings: FitsSettings) -> np.ndarray:
    """uint8 (H, W, C): the asinh stretch of FitsSettings applied to each channel.

    With the `simulator` preset this is exactly render.stretch (bit for bit, see below).
    """
    channels = flux_image.flux.shape[-1]
    scales = np.asarray(settings.scales, np.float32)
    if len(scales) not in (1, channels):
        raise ValueError(f"{len(scales)} scales for {channels} channels")
    # The simulator's (C, H, W) layout and float32 operation order: the same numpy kernels on the
    # same values, so a simulated galaxy gives exactly render.stretch's bytes.
    flux = np.ascontiguousarray(flux_image.flux.transpose(2, 0, 1))
    value = flux * np.broadcast_to(scales, (channels,))[:, None, None] + np.float32(settings.offset)
    low = np.arcsinh(settings.black / settings.softening)
    gain = np.float32(255 / (np.arcsinh(settings.white / settings.softening) - low))
    level = (np.arcsinh(value * np.float32(1 / settings.softening)) - np.float32(low)) * gain
    pixels = (np.clip(level, 0, 255) + 0.5).astype(np.uint8)  # round half up, as render.stretch
    return np.ascontiguousarray(pixels.transpose(1, 2, 0))


def decode_fits(
    source: Source,
    img_size: int,
    greyscale: bool,
    settings: FitsSettings = PRESETS["decals"],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """uint8 (img_size, img_size, 1 if greyscale else 3), as raster.decode_image gives for a PNG.

    One channel becomes grey RGB; 2 or more than 3 channels have no RGB image (ImageError).
    """
    pixels = fits_to_uint8(read_fits(source, settings, max_pixels), settings)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    elif pixels.shape[-1] != 3:
        raise ImageError(
            source, f"{pixels.shape[-1]} bands make no RGB image; choose 1 or 3 with `bands`"
        )
    return _as_decode_image(pixels, img_size, greyscale)


def _as_decode_image(rgb: np.ndarray, img_size: int, greyscale: bool) -> np.ndarray:
    """raster.decode_image's steps after its decode: plain-mean grey, then LANCZOS to img_size.

    A copy of those few lines because raster keeps them inside decode_image; going through an
    in-memory PNG instead would double the cost of a FITS. tests/test_fits.py compares the two.
    """
    image = Image.fromarray(rgb)  # (H, W, 3) uint8 -> RGB, as decode_image's convert("RGB")
    if greyscale:
        image = image.convert("L", matrix=GREY_MATRIX)
    if image.size != (img_size, img_size):
        image = image.resize((img_size, img_size), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if greyscale else array


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


# ---- reading ---------------------------------------------------------------------------------


def _open_source(source: Source) -> tuple[Any, int | None]:
    """(what fits.open takes, the byte size to check for truncation or None when gzipped)."""
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if data.startswith(GZIP_MAGIC):  # astropy sniffs gzip in files, not in memory buffers
            return gzip.GzipFile(fileobj=io.BytesIO(data)), None
        return io.BytesIO(data), len(data)
    path = Path(source)
    if not path.is_file():
        raise ImageError(source, "file not found")
    with path.open("rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    return str(path), None if gzipped else path.stat().st_size


def _has_image(hdu) -> bool:
    if isinstance(hdu, fits.GroupsHDU) or not hdu.is_image:
        return False
    return hdu.header.get("NAXIS", 0) > 0 and 0 not in hdu.shape


def _file_bands(hdus: list, source: Source) -> list[_Band]:
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
    return [_Band(_plane_name(hdu.header), i) for i, hdu in images]


def _bands_of_one_hdu(i: int, hdu, source: Source) -> list[_Band]:
    shape = hdu.shape
    if len(shape) == 2:
        return [_Band(_plane_name(hdu.header), i)]
    if len(shape) != 3:
        raise ImageError(
            source,
            f"image has {len(shape)} dimension(s), shape {shape}; expected 2 (one band) or 3 (a cube of bands)",
        )
    names = _cube_names(hdu.header)
    axis = _band_axis(hdu.header, shape, len(names))
    if axis is None:
        raise ImageError(
            source,
            f"cannot tell which axis of the cube {shape} holds the bands (no celestial CTYPEs, no band names, no short first or last axis)",
        )
    if names and len(names) != shape[axis]:
        raise ImageError(
            source, f"the header names {len(names)} bands {names} but the cube has {shape[axis]}"
        )
    names = names or ("",) * shape[axis]
    return [_Band(name, i, plane, axis) for plane, name in enumerate(names)]


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


def _select(bands: list[_Band], settings: FitsSettings, source: Source) -> list[_Band]:
    """The file band of each channel (see read_fits for a single unnamed band)."""
    if not settings.bands:
        if len(settings.scales) not in (1, len(bands)):
            raise ImageError(
                source,
                f"the file has {len(bands)} bands but the settings give {len(settings.scales)} scales",
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


def _find(bands: list[_Band], name: str) -> list[_Band]:
    """The file bands called `name`: exact matches, else matches ignoring case.

    Exact first because case can matter (Johnson R is not SDSS r); the fallback because EXTNAME is
    conventionally upper case (astropy upper-cases it), so EXTNAME 'Z' must still find band z.
    """
    exact = [b for b in bands if b.name == name]
    return exact or [b for b in bands if b.name.lower() == name.lower()]


def _check_before_reading(hdus, chosen, max_pixels, file_size, source) -> None:
    """Sizes from the headers: too many pixels, bands of unequal shapes, truncated data."""
    needed = sorted({b.hdu for b in chosen})
    total = sum(math.prod(hdus[i].shape) for i in needed)
    if total > max_pixels:
        shapes = " + ".join("x".join(map(str, hdus[i].shape)) for i in needed)
        raise ImageError(source, f"too large: {total} pixels ({shapes}) > max_pixels {max_pixels}")
    sizes = {b.name or str(b.hdu): _plane_shape(hdus[b.hdu].shape, b) for b in chosen}
    if len(set(sizes.values())) > 1:
        raise ImageError(source, f"bands differ in shape: {sizes}")
    for i in needed:
        # Uncompressed data must fit in the file; a CompImageHDU's is checked as it is decompressed.
        if file_size is None or isinstance(hdus[i], fits.CompImageHDU):
            continue
        end = hdus[i].fileinfo()["datLoc"] + hdus[i].size
        if end > file_size:
            raise ImageError(
                source, f"truncated file: HDU {i} needs {end} bytes, the file has {file_size}"
            )


def _plane_shape(shape: tuple[int, ...], band: _Band) -> tuple[int, ...]:
    return shape if band.plane is None else tuple(s for a, s in enumerate(shape) if a != band.axis)


def _read_bands(hdus, chosen: list[_Band], settings: FitsSettings, source: Source) -> FluxImage:
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
    """The HDU's pixels as native float32 (astropy applies BSCALE/BZERO and turns BLANK into NaN)."""
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
            f"{n_bad / plane.size:.0%} of the pixels of band {name} are NaN/inf/blank (max_bad_fraction {settings.max_bad_fraction:.0%})",
        )
    # The median of a cutout is its sky: a neutral fill that neither adds light nor punches holes.
    filled = plane.copy()
    filled[bad] = np.median(plane[~bad])
    return filled, n_bad


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
