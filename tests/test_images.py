"""images.load_image: Pillow decode, RGB, LANCZOS resize, plain-mean greyscale, clear errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gz_experiments.errors import UserError
from gz_experiments.images import ImageError, decode_image, encode_png, load_image


def _rgb(size=20, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _save(pixels: np.ndarray, path, **kwargs):
    Image.fromarray(pixels).save(path, **kwargs)
    return path


def test_png_path_and_bytes_give_the_same_float_image(tmp_path):
    path = _save(_rgb(), tmp_path / "g.png")
    from_path = load_image(path, 20, greyscale=False)
    from_bytes = load_image(path.read_bytes(), 20, greyscale=False)
    assert from_path.dtype == np.float32 and from_path.shape == (20, 20, 3)
    np.testing.assert_array_equal(from_path, from_bytes)
    np.testing.assert_array_equal(from_path * 255, _rgb())  # no resize at the stored size


def test_resize_is_lanczos_and_greyscale_is_the_rounded_plain_mean(tmp_path):
    path = _save(_rgb(40), tmp_path / "g.jpg", quality=95)
    decoded = np.asarray(Image.open(path).convert("RGB"), np.float64)
    resized = Image.fromarray(decoded.astype(np.uint8)).resize((16, 16), Image.Resampling.LANCZOS)
    mean = Image.fromarray(np.rint(decoded.mean(-1)).astype(np.uint8))
    grey_first = np.asarray(mean.resize((16, 16), Image.Resampling.LANCZOS), np.float64)
    colour = load_image(path, 16, greyscale=False)
    grey = load_image(path, 16, greyscale=True)
    assert grey.shape == (16, 16, 1) and grey.min() >= 0 and grey.max() <= 1
    np.testing.assert_array_equal(colour * 255, np.asarray(resized))
    np.testing.assert_allclose(grey[..., 0] * 255, grey_first, atol=1e-4)
    # averaging before the (linear) resize matches averaging after it up to rounding
    assert np.abs(grey[..., 0] - colour.mean(-1)).max() <= 3.5 / 255


def test_greyscale_and_palette_sources_convert_to_rgb(tmp_path):
    grey = _save(_rgb()[..., 0], tmp_path / "l.png")
    palette = tmp_path / "p.png"
    Image.fromarray(_rgb()).convert("P").save(palette)
    assert load_image(grey, 20, greyscale=False).shape == (20, 20, 3)
    assert load_image(palette, 10, greyscale=True).shape == (10, 10, 1)


def test_encode_png_is_lossless():
    pixels = _rgb(12)
    np.testing.assert_array_equal(decode_image(encode_png(pixels), 12, False), pixels)
    grey = pixels[..., :1]
    np.testing.assert_array_equal(decode_image(encode_png(grey), 12, True)[..., 0], grey[..., 0])


def _truncated(tmp_path):
    data = (_save(_rgb(64), tmp_path / "full.png")).read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _cmyk(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(path)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: d / "absent.png", "file not found"),
        (lambda d: (d / "text.png").write_text("hello") and d / "text.png", "not a PNG or JPEG"),
        (lambda d: _save(_rgb(), d / "g.gif"), "unsupported format GIF"),
        (lambda d: _save(_rgb(), d / "g.bmp"), "unsupported format BMP"),
        (_truncated, "corrupt or truncated"),
        (_cmyk, "unsupported mode CMYK"),
    ],
)
def test_bad_images_raise_an_image_error_naming_file_and_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ImageError) as info:
        load_image(path, 8, greyscale=True)
    assert isinstance(info.value, UserError)
    assert reason in info.value.reason and str(path) in str(info.value)


def test_bad_bytes_name_their_length():
    buffer = io.BytesIO()
    Image.fromarray(_rgb()).save(buffer, format="TIFF")
    with pytest.raises(ImageError, match=r"<\d+ bytes>: unsupported format TIFF"):
        load_image(buffer.getvalue(), 8, greyscale=False)


def test_a_decompression_bomb_is_refused_from_its_header_in_milliseconds(tmp_path):
    import time

    from .conftest import write_png_bomb

    bomb = write_png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match="13000 x 13000 = 169,000,000 pixels, more than the limit"):
        load_image(bomb, 32, True)
    assert time.perf_counter() - start < 1.0  # nothing was decoded
    with pytest.raises(ImageError, match="20 x 20 = 400 pixels, more than the limit of 100 "):
        load_image(_save(_rgb(), tmp_path / "small.png"), 32, True, max_pixels=100)


def png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG (grey for (H, W), RGB for (H, W, 3)): Pillow cannot write 16-bit colour."""
    height, width = values.shape[:2]
    colour_type = 2 if values.ndim == 3 else 0
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        [chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(rows)), chunk(b"IEND", b"")]
    )


def test_16_bit_png_grey_and_colour_follow_one_rule_the_high_byte():
    values = np.random.default_rng(0).integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    colour = decode_image(png16(values), 8, greyscale=False)
    grey = decode_image(png16(values[..., 0]), 8, greyscale=False)
    np.testing.assert_array_equal(colour, values >> 8)
    np.testing.assert_array_equal(grey, np.repeat(values[..., :1] >> 8, 3, axis=-1))
