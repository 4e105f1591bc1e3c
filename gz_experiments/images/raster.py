"""Decoding one galaxy image: the same preprocessing at shard time and at prediction time.

Pillow decodes PNG or JPEG, converts to RGB, resizes with LANCZOS to a square `img_size` and,
for greyscale, takes the plain mean of the three bands (as zoobot did, not a luminance weighting;
averaged before the resize, see decode_raster). Pixels are uint8 *before* scaling to [0, 1], so an
image decoded for prediction is bit-identical to the one stored in a shard.

16-bit PNGs, grey or colour alike, keep their high byte (value >> 8): Pillow reads 16-bit RGB
that way, and 16-bit grey is reduced by the same rule here (it was refused). Other modes that
would be mangled (32-bit / float, CMYK) are refused.

No TensorFlow here: shard workers import this module and nothing heavier.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gz_experiments.errors import UserError

SUPPORTED_FORMATS = ("PNG", "JPEG")
# 8-bit modes that convert to RGB without losing meaning; 16-bit / float / CMYK would be mangled.
SUPPORTED_MODES = ("RGB", "RGBA", "L", "LA", "P", "1")
# Pillow's modes for a 16-bit grey PNG; reduced to 8 bits as Pillow reduces 16-bit RGB.
SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L")
Source = str | Path | bytes
GREY_MATRIX = (1 / 3, 1 / 3, 1 / 3, 0)  # the plain mean of R, G, B (zoobot's greyscale)
# Images with more pixels are refused from their header, before decoding: a 20 KB PNG can claim
# 13000 x 13000 pixels and take a gigabyte to decode. 4096^2 is ~10x a survey cutout's area.
DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageError(UserError):
    """An image that cannot be used: missing, not PNG/JPEG, truncated, corrupt, or odd mode."""

    def __init__(self, source: Source, reason: str):
        self.source = _describe(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


def _describe(source: Source) -> str:
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes>"
    return str(source)


def _open(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    if isinstance(source, bytes | bytearray):
        handle = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(source, "file not found")
        handle = path
    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 M pixels; our own limit (checked below) decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(handle)
    except UnidentifiedImageError:
        raise ImageError(source, "not a PNG or JPEG image (cannot identify the format)") from None
    except Image.DecompressionBombError:
        raise ImageError(source, "the image claims too many pixels (decompression bomb)") from None
    except OSError as exc:
        raise ImageError(source, f"cannot open: {exc}") from None
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(source, f"unsupported format {image.format}; convert it to PNG or JPEG")
    if image.mode not in (*SUPPORTED_MODES, *SIXTEEN_BIT_GREY):
        raise ImageError(
            source, f"unsupported mode {image.mode}; save it as 8-bit RGB or greyscale"
        )
    check_pixels(source, *image.size, max_pixels)
    try:
        image.load()  # decoding is lazy: truncation and corruption only show up here
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(source, f"corrupt or truncated image: {exc}") from None
    if image.mode in SIXTEEN_BIT_GREY:
        return Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8))
    return image


def check_pixels(source: Source, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image by its header's dimensions, before any pixel is decoded."""
    if width * height > max_pixels:
        raise ImageError(
            source,
            f"image is {width} x {height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,} (max_image_pixels); downscale it or raise the limit",
        )


def decode_raster(
    source: Source, img_size: int, greyscale: bool, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """uint8 array (img_size, img_size, 1 if greyscale else 3): what a shard stores."""
    with _open(source, max_pixels) as image:
        return stored_pixels(image.convert("RGB"), img_size, greyscale)


def stored_pixels(rgb: Image.Image, img_size: int, greyscale: bool) -> np.ndarray:
    """An RGB image as a shard stores it, whatever it was decoded from (PNG, JPEG, FITS)."""
    pixels = rgb
    if greyscale:
        # Pillow's matrix conversion is exactly round(sum / 3) (a sum of three uint8 over 3 never
        # ends in .5). Averaging before the resize gives resize-then-average up to rounding
        # (within a few grey levels at sharp edges: LANCZOS is linear) for a third of the work.
        pixels = pixels.convert("L", matrix=GREY_MATRIX)
    if pixels.size != (img_size, img_size):
        pixels = pixels.resize((img_size, img_size), Image.Resampling.LANCZOS)
    array = np.asarray(pixels, dtype=np.uint8)
    return array[..., None] if greyscale else array


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of a uint8 (S, S, 1|3) array (level 1: fast, nearly as small as level 6)."""
    # Pillow infers the mode from the array: 2-D uint8 -> L, (H, W, 3) uint8 -> RGB.
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
