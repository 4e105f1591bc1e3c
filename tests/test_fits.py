"""images.fits: FITS layouts, band names, bad pixels, rejections, and simulator PNG == FITS pixels."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from astropy.io import fits

from gz_experiments.errors import UserError
from gz_experiments.images.fits import (
    PRESETS,
    FitsSettings,
    FluxImage,
    decode_fits,
    fits_to_uint8,
    is_fits,
    read_fits,
    write_fits,
)
from gz_experiments.images.raster import ImageError, decode_raster, encode_png
from gz_experiments.simulate import render
from gz_experiments.simulate.latents import galaxy, sample_latents

ANY = FitsSettings(bands=(), scales=(1.0,))  # the file's bands as they come


def _flux(shape=(3, 12, 16), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(5, 3, shape).astype(np.float32)


def _header(**cards) -> fits.Header:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    return header


def _write(path, *hdus):
    fits.HDUList(list(hdus)).writeto(path)
    return path


def _reason(source, settings=ANY, **kwargs) -> str:
    with pytest.raises(ImageError) as info:
        read_fits(source, settings, **kwargs)
    assert "\n" not in info.value.reason
    return info.value.reason


def _card_bytes(**cards) -> bytes:
    """A hand-made header block (no data): lets a header claim what astropy would not write."""
    lines = [f"{k:<8}= {v:>20}".ljust(80) for k, v in cards.items()] + ["END".ljust(80)]
    text = "".join(lines)
    return text.ljust(-(-len(text) // 2880) * 2880).encode("ascii")


# ---- layouts and band names ------------------------------------------------------------------


def test_single_2d_band_is_replicated_or_kept_as_one_channel(tmp_path):
    plane = _flux((12, 16))
    path = _write(tmp_path / "one.fits", fits.PrimaryHDU(plane))
    one = read_fits(path, ANY)
    assert one.flux.shape == (12, 16, 1) and one.bands == ("",) and one.bad_pixels == (0,)
    np.testing.assert_array_equal(one.flux[..., 0], plane[::-1])  # FITS rows run bottom to top
    three = read_fits(path, PRESETS["decals"])
    assert three.flux.shape == (12, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(three.flux[..., c], plane[::-1])
    assert decode_fits(path, 8, greyscale=True, settings=ANY).shape == (8, 8, 1)


def test_cube_band_first_and_band_last_give_the_same_flux(tmp_path):
    cube = _flux()
    named = _header(BANDS="grz", BAND0="g", BAND1="r", BAND2="z")
    first = _write(tmp_path / "first.fits", fits.PrimaryHDU(cube, named))
    # band-last and unnamed: decided by shape (3 is short, 12 and 16 are not)
    last = _write(tmp_path / "last.fits", fits.PrimaryHDU(cube.transpose(1, 2, 0).copy()))
    # a short spatial axis: only the celestial CTYPEs tell the band axis
    tiny = cube[:, :3, :3]
    wcs = _header(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CTYPE3="BAND")
    small = _write(tmp_path / "wcs.fits", fits.PrimaryHDU(tiny.copy(), wcs))
    a = read_fits(first, FitsSettings(bands=("g", "r", "z"), scales=(1.0,)))
    b = read_fits(last, ANY)
    assert a.bands == ("g", "r", "z") and b.bands == ("", "", "")
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_array_equal(a.flux, cube.transpose(1, 2, 0)[::-1])
    assert read_fits(small, ANY).flux.shape == (3, 3, 3)
    assert "cannot tell which axis" in _reason(
        _write(tmp_path / "cube.fits", fits.PrimaryHDU(tiny.copy()))
    )


def test_band_names_from_bands_keyword_and_band1_keywords(tmp_path):
    cube = _flux((2, 12, 16))
    comma = _write(tmp_path / "c.fits", fits.PrimaryHDU(cube, _header(BANDS="W1, W2")))
    one_based = _write(tmp_path / "o.fits", fits.PrimaryHDU(cube, _header(BAND1="W1", BAND2="W2")))
    assert read_fits(comma, ANY).bands == ("W1", "W2") == read_fits(one_based, ANY).bands
    wrong = _write(tmp_path / "w.fits", fits.PrimaryHDU(cube, _header(BANDS="grz")))
    assert "names 3 bands" in _reason(wrong)


def test_several_hdus_one_band_each_selected_and_ordered_by_name(tmp_path):
    g, r, z = _flux((3, 12, 16))
    path = _write(
        tmp_path / "multi.fits",
        fits.PrimaryHDU(g, _header(FILTER="g")),
        fits.ImageHDU(r, _header(BAND="r")),
        fits.ImageHDU(z, name="z"),  # astropy writes EXTNAME = 'Z': matched ignoring case
        fits.BinTableHDU.from_columns([fits.Column(name="ivar", format="E", array=np.ones(3))]),
    )
    image = read_fits(path, PRESETS["decals"])  # z, r, g as R, G, B
    assert image.bands == ("Z", "r", "g")  # as the file names them
    np.testing.assert_array_equal(image.flux, np.stack([z, r, g], -1)[::-1])
    assert read_fits(path, FitsSettings(bands=("r",), scales=(1.0,))).flux.shape == (12, 16, 1)
    reason = _reason(path, FitsSettings(bands=("i", "r", "u"), scales=(1.0,)))
    assert reason.startswith("bands i, u not in the file; it has g, r, Z")


def test_a_band_named_twice_is_ambiguous(tmp_path):
    r1, r2 = _flux((2, 12, 16))
    path = _write(
        tmp_path / "rr.fits",
        fits.PrimaryHDU(r1, _header(FILTER="r")),
        fits.ImageHDU(r2, _header(FILTER="r")),
    )
    assert (
        _reason(path, FitsSettings(bands=("r",), scales=(1.0,)))
        == "band r appears 2 times in the file"
    )


def test_unnamed_bands_cannot_be_selected_by_name(tmp_path):
    path = _write(tmp_path / "c.fits", fits.PrimaryHDU(_flux()))
    assert "it has (unnamed), (unnamed), (unnamed)" in _reason(path, PRESETS["decals"])


def test_gz_fz_and_bytes_read_like_plain_fits(tmp_path):
    cube = _flux()
    plain = write_fits(tmp_path / "a.fits", cube, "grz", 0.262)
    gzipped = write_fits(tmp_path / "a.fits.gz", cube, "grz", 0.262)
    packed = write_fits(tmp_path / "a.fits.fz", cube, "grz", 0.262)
    with fits.open(packed) as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU) and hdul[1].header["BANDS"] == "grz"
    with fits.open(gzipped) as hdul:
        assert hdul[0].header["PIXSCALE"] == 0.262
    settings = PRESETS["decals"]
    expected = read_fits(plain, settings).flux
    np.testing.assert_array_equal(expected, cube.transpose(1, 2, 0)[..., ::-1])  # round trip
    for source in (gzipped, packed, plain.read_bytes(), gzipped.read_bytes(), packed.read_bytes()):
        np.testing.assert_array_equal(read_fits(source, settings).flux, expected)  # fz is lossless


def test_write_fits_stores_bottom_row_first_and_takes_band_last_flux(tmp_path):
    cube = _flux()
    path = write_fits(
        tmp_path / "x.fits", cube.transpose(1, 2, 0), ["g", "r", "z"], 0.5, unit="sky"
    )
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(hdul[0].data[:, 0], cube[:, -1])  # FITS row 1 = bottom
        assert hdul[0].header["BUNIT"] == "sky" and hdul[0].header["BAND2"] == "z"
    single = write_fits(tmp_path / "r.fits", cube[1], ["r"], 0.5)
    assert read_fits(single, FitsSettings(bands=("r",), scales=(1.0,))).bands == ("r",)


# ---- bad pixels --------------------------------------------------------------------------------


def test_nan_inf_and_blank_pixels_are_counted_and_filled_with_the_band_sky(tmp_path):
    cube = _flux()
    cube[0, 0, :3] = np.nan
    cube[2, 5, 5] = np.inf
    path = _write(tmp_path / "nan.fits", fits.PrimaryHDU(cube, _header(BANDS="grz")))
    image = read_fits(path, PRESETS["decals"])
    assert image.bad_pixels == (1, 0, 3)  # z, r, g
    assert np.isfinite(image.flux).all()
    g = image.flux[..., 2]
    np.testing.assert_array_equal(g[-1, :3], np.median(cube[0][np.isfinite(cube[0])]))
    ints = np.arange(48, dtype=np.int16).reshape(6, 8)
    blank = _write(tmp_path / "blank.fits", fits.PrimaryHDU(ints, _header(BLANK=7)))
    assert read_fits(blank, ANY).bad_pixels == (1,)


def test_too_many_or_all_bad_pixels_are_rejected(tmp_path):
    cube = _flux()
    cube[1, :4] = np.nan  # a third of the r band
    path = _write(tmp_path / "holes.fits", fits.PrimaryHDU(cube, _header(BANDS="grz")))
    assert _reason(path, PRESETS["decals"]).startswith("33% of the pixels of band r are NaN")
    assert read_fits(path, FitsSettings.preset("decals", max_bad_fraction=0.5)).bad_pixels[1] == 64
    cube[2] = np.nan
    dead = _write(tmp_path / "dead.fits", fits.PrimaryHDU(cube, _header(BANDS="grz")))
    assert _reason(dead, PRESETS["decals"]) == "all pixels of band z are NaN/inf/blank"


# ---- rejections --------------------------------------------------------------------------------


def test_a_table_only_file_has_no_image_hdu(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.ones(3))])
    path = _write(tmp_path / "t.fits", fits.PrimaryHDU(), table)
    assert _reason(path) == "no image HDU with data (found: PrimaryHDU, BinTableHDU)"


@pytest.mark.parametrize("shape", [(16,), (2, 3, 8, 8)])
def test_wrong_number_of_dimensions(tmp_path, shape):
    path = _write(tmp_path / "d.fits", fits.PrimaryHDU(np.ones(shape, np.float32)))
    assert f"image has {len(shape)} dimension(s)" in _reason(path)


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")  # the cut header
def test_truncated_files_are_rejected(tmp_path):
    path = write_fits(tmp_path / "a.fits", _flux((3, 40, 40)), "grz", 0.262)
    data = path.read_bytes()
    assert _reason(data[:5000]).startswith("truncated file: HDU 0 needs")
    assert _reason(data[:1000]).startswith("unreadable FITS")  # inside the header
    cut = tmp_path / "cut.fits.gz"
    cut.write_bytes(gzip.compress(data)[:3000])
    # a cut gzip stream is inflated as far as it goes, then measured against its header
    assert _reason(cut).startswith("truncated file: HDU 0 needs 22080 bytes")
    packed = write_fits(tmp_path / "a.fits.fz", _flux((3, 40, 40)), "grz", 0.262).read_bytes()
    assert "truncated or corrupt data" in _reason(packed[: len(packed) - 3000])


def test_unsupported_bitpix_is_rejected():
    data = _card_bytes(SIMPLE="T", BITPIX=24, NAXIS=2, NAXIS1=4, NAXIS2=4) + bytes(2880)
    assert _reason(data).startswith("unsupported BITPIX 24 in HDU 0")


def test_too_many_pixels_are_rejected_from_the_header_alone():
    # A header promising 10^10 pixels and no data at all: reading any data would fail differently.
    data = _card_bytes(SIMPLE="T", BITPIX=-32, NAXIS=2, NAXIS1=100000, NAXIS2=100000)
    assert _reason(data).startswith("too large: 10000000000 pixels (100000x100000)")


def test_a_tile_compressed_decompression_bomb_is_rejected_before_decompressing(tmp_path):
    packed = write_fits(tmp_path / "b.fits.fz", np.zeros((40, 40), np.float32), ["r"], 1.0)
    data = packed.read_bytes()
    for key in (b"ZNAXIS1", b"ZNAXIS2"):  # the compressed image now claims 100000 x 100000
        start = data.index(key.ljust(8) + b"=")
        data = (
            data[:start]
            + (key.ljust(8) + b"= " + b"100000".rjust(20)).ljust(80)
            + data[start + 80 :]
        )
    assert _reason(data).startswith("too large: 10000000000 pixels")


def test_missing_file_and_non_fits_bytes(tmp_path):
    assert _reason(tmp_path / "nope.fits") == "file not found"
    assert _reason(encode_png(np.zeros((4, 4, 3), np.uint8))).startswith("unreadable FITS")


def test_rejections_are_user_errors_with_the_source():
    with pytest.raises(UserError, match="<2880 bytes>: too large"):
        read_fits(_card_bytes(SIMPLE="T", BITPIX=8, NAXIS=2, NAXIS1=10**5, NAXIS2=10**5), ANY)


def test_max_pixels_counts_every_value_read(tmp_path):
    path = write_fits(tmp_path / "a.fits", _flux(), "grz", 1.0)
    assert _reason(path, max_pixels=3 * 12 * 16 - 1).startswith("too large: 576 pixels (3x12x16)")
    assert read_fits(path, ANY, max_pixels=3 * 12 * 16).flux.shape == (12, 16, 3)


# ---- settings ---------------------------------------------------------------------------------


def test_settings_round_trip_through_json_and_validate():
    for settings in PRESETS.values():
        assert FitsSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert FitsSettings.preset("simulator", bands=("r",), scales=(1.0,)).offset == 1.1
    with pytest.raises(UserError, match="unknown FITS preset"):
        FitsSettings.preset("sdss")
    with pytest.raises(UserError, match="missing fields \\['white'\\]"):
        FitsSettings.from_dict({k: v for k, v in ANY.to_dict().items() if k != "white"})
    with pytest.raises(UserError, match="2 scales for 3 bands"):
        FitsSettings(scales=(1.0, 2.0))
    with pytest.raises(UserError, match="must be above black"):
        FitsSettings(white=-1.0)
    with pytest.raises(UserError, match="not 'zrg'"):
        FitsSettings(bands="zrg")


def test_simulator_preset_holds_the_renderer_constants():
    s = PRESETS["simulator"]
    assert s.bands == ("z", "r", "g")  # render.stretch takes g, r, z reversed as R, G, B
    np.testing.assert_array_equal(np.float32(s.scales), render.RGB_SCALE)
    assert (s.offset, s.softening, s.white, s.black) == (
        render.SKY_LEVEL,
        render.STRETCH_SOFTENING,
        render.STRETCH_MAX,
        0.0,
    )


def test_decals_preset_is_the_gz_decals_dr2_style_stretch():
    # zooniverse/decals get_dr2_style_image: flux / (g 0.008, r 0.014, z 0.019), asinh, (-0.5, 300)
    flux = np.random.default_rng(1).normal(0.05, 0.5, (20, 20, 3)).astype(np.float32)  # z, r, g
    divisors = np.array([0.019, 0.014, 0.008])
    low, high = np.arcsinh(-0.5), np.arcsinh(300.0)
    reference = (np.arcsinh(flux / divisors) - low) / (high - low)
    expected = np.rint(np.clip(reference, 0, 1) * 255)
    ours = fits_to_uint8(FluxImage(flux, ("z", "r", "g"), (0, 0, 0)), PRESETS["decals"])
    assert np.abs(ours - expected).max() <= 1  # float32 vs float64 at .5 boundaries
    assert (ours == expected).mean() > 0.99


# ---- is_fits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_decode_fits_resizes_and_greys_exactly_like_decode_image_of_a_png(tmp_path, channels):
    flux = np.random.default_rng(2).uniform(-1, 400, (channels, 30, 41)).astype(np.float32)
    settings = FitsSettings.preset(
        "simulator", bands=("z", "r", "g")[:channels], scales=(0.7, 1.0, 1.5)[:channels]
    )
    path = write_fits(tmp_path / "a.fits", flux, ("z", "r", "g")[:channels], 1.0)
    rgb = fits_to_uint8(read_fits(path, settings), settings)
    png = encode_png(rgb)  # an L PNG for one channel: decode_image turns it to RGB first
    for size, grey in ((30, False), (30, True), (17, False), (17, True), (64, True)):
        np.testing.assert_array_equal(
            decode_fits(path, size, grey, settings), decode_raster(png, size, grey)
        )


def test_is_fits_by_suffix_or_magic_bytes(tmp_path):
    for name in ("a.fits", "a.FIT", "a.fts", "a.fits.gz", "a.fits.fz", "b/c.fit.gz"):
        assert is_fits(name) and is_fits(tmp_path / name)
    for name in ("a.png", "a.jpg", "a.fits.png", "fits"):
        assert not is_fits(name)
    data = write_fits(tmp_path / "a.fits", _flux(), "grz", 1.0).read_bytes()
    assert is_fits(data) and is_fits(gzip.compress(data))
    assert not is_fits(encode_png(np.zeros((2, 2, 3), np.uint8))) and not is_fits(b"\x1f\x8bjunk")


# ---- the simulator: FITS and PNG give the same pixels ------------------------------------------


def _rendered_flux(monkeypatch, size: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(g, r, z flux of a simulated galaxy, its uint8 RGB render) via render_galaxy itself."""
    captured = []
    stretch = render.stretch

    def keep(flux):
        captured.append(flux)
        return stretch(flux)

    monkeypatch.setattr(render, "stretch", keep)
    latents = sample_latents(3, index + 1)
    rgb = render.render_galaxy(galaxy(latents, index), size, np.random.default_rng(index))
    return captured[0], rgb


@pytest.mark.parametrize("compress", [False, True])
def test_simulated_galaxy_fits_gives_exactly_the_png_pixels(tmp_path, monkeypatch, compress):
    # Exact, not within 1 level: float32 FITS (and GZIP_2 without quantisation) stores the flux
    # bit for bit, and fits_to_uint8 runs render.stretch's float32 operations in the same order
    # on the same (C, H, W) arrays, so every rounding happens identically.
    settings = PRESETS["simulator"]
    noise = np.random.default_rng(5).normal(0, 400, (3, 48, 48)).astype(np.float32)
    galaxies = [_rendered_flux(monkeypatch, 64, i) for i in range(3)]
    for i, (flux, rgb) in enumerate([(noise, render.stretch(noise)), *galaxies]):
        path = write_fits(tmp_path / f"g{i}.fits", flux, ("g", "r", "z"), 0.262, compress)
        np.testing.assert_array_equal(fits_to_uint8(read_fits(path, settings), settings), rgb)
        png = encode_png(rgb)
        for size, grey in ((flux.shape[-1], False), (32, False), (32, True)):
            expected = decode_raster(png, size, grey)
            np.testing.assert_array_equal(decode_fits(path, size, grey, settings), expected)


def test_a_gzip_bomb_is_inflated_only_through_its_declared_hdus(tmp_path):
    """A cube followed by 256 MB of zeros, gzipped (~250 KB): read as fast as the cube alone,
    as a file (shard, predict) and as bytes (a served `image`); data declared beyond the pixel
    limit is refused before it is inflated."""
    import time

    from .fits_files import gzip_bomb, huge_header

    cube = write_fits(tmp_path / "a.fits", _flux((3, 40, 40)), "grz", 0.262)
    bomb = tmp_path / "bomb.fits.gz"
    bomb.write_bytes(gzip_bomb(cube.read_bytes(), 256 * 2**20))
    start = time.monotonic()
    for source in (bomb, bomb.read_bytes()):
        np.testing.assert_array_equal(read_fits(source, ANY).flux, read_fits(cube, ANY).flux)
    assert time.monotonic() - start < 1.0
    declared = gzip_bomb(huge_header(), 0)
    assert _reason(declared).startswith("too large: its headers declare 9,600,000,000 bytes")
