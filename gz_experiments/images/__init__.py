"""Galaxy images in, uint8 pixels out: the one decode shared by sharding, prediction and serving.

- `raster`: PNG / JPEG through Pillow.
"""

from gz_experiments.images.raster import ImageError, decode_image, encode_png, load_image

__all__ = ["ImageError", "decode_image", "encode_png", "load_image"]
