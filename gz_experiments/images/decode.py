"""The one image decode: PNG / JPEG through Pillow, FITS through astropy, chosen per image.

    pixels = decode_image("J0001.fits.fz", 300, greyscale=True, fits=manifest.fits)
    pixels = decode_image(base64.b64decode(request_image), 300, True, fits=spec.fits)

A path is FITS by its suffix (.fits, .fit, .fts, each optionally .gz / .fz); bytes are FITS by
their first bytes (a base64 image in a request has no name). FITS flux becomes pixels by the
given `FitsSettings`, stored in the shard manifest and the model spec; without settings a FITS
image is refused with a reason rather than stretched by a guess. astropy is imported only when
a FITS image arrives.
"""

from __future__ import annotations

import numpy as np

from gz_experiments.images import raster
from gz_experiments.images.fits.stretch import FitsSettings
from gz_experiments.images.formats import file_is_fits, is_fits
from gz_experiments.images.raster import DEFAULT_MAX_PIXELS, ImageError, Source

NO_FITS_SETTINGS = (
    "a FITS image, but this model has no FITS settings (it was trained on shards without FITS "
    "images), so how its flux becomes pixels is unknown; send PNG/JPEG, or train on shards "
    "that include FITS"
)
MISNAMED_FITS = "a FITS file without a FITS suffix; rename it to .fits (or .fits.gz / .fits.fz)"
NOT_FITS = "unreadable FITS (not FITS, corrupt or truncated): it has no FITS header"


def check_name_matches(name: str, data: bytes) -> None:
    """A file read into memory is decoded by its content: its name's kind must agree (so a PNG
    named .fits, or a FITS named .png, is refused as it would be when decoded by path)."""
    if is_fits(name) != is_fits(data):
        raise ImageError(name, MISNAMED_FITS if is_fits(data) else NOT_FITS)


def decode_image(
    source: Source,
    img_size: int,
    greyscale: bool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fits: FitsSettings | None = None,
) -> np.ndarray:
    """uint8 (img_size, img_size, 1 if greyscale else 3): what a shard stores.

    `max_pixels` bounds a PNG/JPEG's pixels and a FITS's values read (pixels x bands), both
    checked from the header before decoding. Raises ImageError with a one-line `.reason`.
    """
    return decode_image_and_count_filled(source, img_size, greyscale, max_pixels, fits)[0]


def decode_image_and_count_filled(
    source: Source,
    img_size: int,
    greyscale: bool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fits: FitsSettings | None = None,
) -> tuple[np.ndarray, int]:
    """(decode_image's pixels, NaN/inf/blank pixels filled: 0 for PNG/JPEG, see decode_fits)."""
    if is_fits(source):
        if fits is None:
            raise ImageError(source, NO_FITS_SETTINGS)
        from gz_experiments.images.fits.read import decode_fits_counted

        return decode_fits_counted(source, img_size, greyscale, fits, max_pixels)
    try:
        return raster.decode_raster(source, img_size, greyscale, max_pixels), 0
    except ImageError:
        # Read again only on failure: a FITS saved as .png (say) gets a reason that says so.
        if not isinstance(source, bytes | bytearray) and file_is_fits(source):
            raise ImageError(source, MISNAMED_FITS) from None
        raise


def load_image(
    source: Source,
    img_size: int,
    greyscale: bool,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fits: FitsSettings | None = None,
) -> np.ndarray:
    """float32 (img_size, img_size, C) in [0, 1], C = 1 for greyscale else 3 (see decode_image)."""
    return decode_image(source, img_size, greyscale, max_pixels, fits).astype(np.float32) / 255.0
