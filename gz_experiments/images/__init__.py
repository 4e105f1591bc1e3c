"""Galaxy images in, uint8 pixels out: the one decode shared by sharding, prediction and serving.

- `decode`: `decode_image` / `load_image`, which pick the reader per image (path suffix or bytes);
- `formats`: which paths and bytes are images, and of which kind (`is_fits`, `image_id`);
- `raster`: PNG / JPEG through Pillow;
- `fits`: FITS flux through astropy and an asinh stretch (`FitsSettings`).
"""

from gz_experiments.images.decode import decode_image, decode_image_and_count_filled, load_image
from gz_experiments.images.fits.stretch import FitsSettings
from gz_experiments.images.formats import IMAGE_SUFFIXES, image_id, image_suffix, is_fits
from gz_experiments.images.raster import ImageError, encode_png

__all__ = [
    "IMAGE_SUFFIXES",
    "FitsSettings",
    "ImageError",
    "decode_image",
    "decode_image_and_count_filled",
    "encode_png",
    "image_id",
    "image_suffix",
    "is_fits",
    "load_image",
]
