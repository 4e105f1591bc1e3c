"""Which files are galaxy images, and of which kind: paths by their name, bytes by their content.

    image_suffix("cutouts/J0001.fits.fz") == ".fits.fz"     image_id("J0001.fits.fz") == "J0001"
    is_fits(b"SIMPLE  =  T ...") and is_fits(gzip.compress(fits_bytes))

Paths are told apart by suffix (never by opening them), so a shard plan knows which catalogs hold
FITS before any image is read. Bytes have no name (a base64 `image` in a request): their first
bytes decide. Standard library only: every image reader imports this module.
"""

from __future__ import annotations

import zlib
from pathlib import Path

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
# .fz is fpack's tile-compressed FITS, .gz a gzipped one (astropy reads both).
FITS_COMPRESSIONS = ("", ".gz", ".fz")
FITS_SUFFIXES = tuple(b + z for b in (".fits", ".fit", ".fts") for z in FITS_COMPRESSIONS)
IMAGE_SUFFIXES = RASTER_SUFFIXES + FITS_SUFFIXES
# For messages (.fit and .fts work too): ".png/.jpg/.jpeg/.fits/.fits.gz/.fits.fz".
ACCEPTED = "/".join(RASTER_SUFFIXES + tuple(".fits" + z for z in FITS_COMPRESSIONS))
FITS_MAGIC = b"SIMPLE  ="  # the first card of every FITS file
GZIP_MAGIC = b"\x1f\x8b"
# The first header block: the magic is in its first card, compressed or not.
FITS_BLOCK = 2880


def image_suffix(path: str | Path) -> str:
    """The image suffix a path ends with, lower case and whole (".fits.gz"), or "" if none."""
    name = Path(path).name.lower()
    # Longest first, so "a.fits.gz" is ".fits.gz" and not a stray ".gz".
    return next((s for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")


def image_id(path: str | Path) -> str:
    """A path without its image suffix: "a/J0001.fits.fz" -> "a/J0001" (posix separators)."""
    path = Path(path)
    suffix = image_suffix(path)
    name = path.name[: len(path.name) - len(suffix)] if suffix else path.stem
    return (path.parent / name).as_posix() if path.parent != Path(".") else name


def is_fits(source: str | Path | bytes | bytearray) -> bool:
    """A FITS path by its suffix (.fits, .fit, .fts, each optionally .gz / .fz), or FITS bytes
    (plain, tile-compressed or gzipped)."""
    if isinstance(source, bytes | bytearray):
        head = bytes(source[:FITS_BLOCK])
        if head.startswith(GZIP_MAGIC):
            try:  # only the first card is inflated: cheap even for a large file
                head = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(
                    head, len(FITS_MAGIC)
                )
            except zlib.error:
                return False
        return head.startswith(FITS_MAGIC)
    return str(source).lower().endswith(FITS_SUFFIXES)


def file_is_fits(path: str | Path) -> bool:
    """A regular file whose content is FITS, whatever its name (for a hint when its suffix is
    wrong). Never opens a pipe or device in a way that could block."""
    from gz_experiments.images.files import read_head

    return is_fits(read_head(path, FITS_BLOCK))
