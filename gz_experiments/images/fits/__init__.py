"""FITS cutouts -> the same uint8 pixels the pipeline stores for PNGs.

    settings = FitsSettings.preset("decals")
    pixels = decode_fits("J0001.fits.fz", img_size=424, greyscale=True, settings=settings)

A survey cutout is flux in a few bands; a shard stores uint8 RGB. Modules:

- `stretch`: `FitsSettings` (bands in channel order, per-band scales, asinh stretch, clip; presets
  `decals` and `simulator`) and `fits_to_uint8`. NumPy only: configs and specs import it.
- `layout`: where the bands are (one 2-D image, a cube band-first or band-last, several image
  HDUs) and which fill the channels, from the headers alone.
- `read`: `read_fits` (astropy.io.fits; bad pixels filled and counted, sizes checked before any
  data is read) and `decode_fits`, which takes the stretched RGB through raster.decode_raster's
  Pillow steps, so the greyscale mean and the LANCZOS resize are exactly those of a PNG.
- `write`: `write_fits`, a band cube with a Legacy-Surveys-style header.

Channel order: `FitsSettings.bands` names the band of each channel, channel 0 = R, 1 = G, 2 = B.
("z", "r", "g") is the DECaLS / Legacy Surveys colour convention (reddest band as red); () takes
the file's bands in file order. Every problem is an ImageError (from raster) whose one-line
`.reason` lands in rejected.csv / skipped.csv / a 400 answer.

Names are exported lazily: importing the settings does not import astropy (~0.4 s).
"""

from importlib import import_module

_EXPORTS = {
    "FitsSettings": "stretch",
    "FluxImage": "stretch",
    "PRESETS": "stretch",
    "fits_to_uint8": "stretch",
    "DEFAULT_MAX_PIXELS": "read",
    "decode_fits": "read",
    "decode_fits_counted": "read",
    "read_fits": "read",
    "write_fits": "write",
}
__all__ = sorted([*_EXPORTS, "FITS_SUFFIXES", "is_fits"])


def __getattr__(name: str):
    if name in ("FITS_SUFFIXES", "is_fits"):
        return getattr(import_module("gz_experiments.images.formats"), name)
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
