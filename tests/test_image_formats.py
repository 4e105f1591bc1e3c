"""images.decode: one decode for PNG/JPEG and FITS (paths by suffix, bytes by content); FITS
settings in the model spec (older specs still load) and in the shard-compatibility check."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from gz_experiments.errors import UserError
from gz_experiments.images import (
    ImageError,
    decode_image,
    decode_image_and_count_filled,
    encode_png,
    image_id,
    image_suffix,
    is_fits,
    load_image,
)
from gz_experiments.images.decode import MISNAMED_FITS, NO_FITS_SETTINGS
from gz_experiments.images.fits.read import decode_fits
from gz_experiments.model_spec import ModelSpec
from gz_experiments.shards.manifest import Manifest, check_compatible
from gz_experiments.simulate.render import stretch

from .fits_files import SIMULATOR, gzip_bytes, simulated_flux, write_layout
from .tiny_models import tiny_spec


@pytest.mark.parametrize(
    ("path", "suffix", "id_str"),
    [
        ("a/J0001.fits.fz", ".fits.fz", "a/J0001"),
        ("J0001.FITS.GZ", ".fits.gz", "J0001"),
        ("x.y.fit", ".fit", "x.y"),
        ("b/c.jpeg", ".jpeg", "b/c"),
        ("c.png", ".png", "c"),
        ("notes.gz", "", "notes"),
        ("cube.hdf5", "", "cube"),
    ],
)
def test_image_suffixes_and_ids(path, suffix, id_str):
    assert image_suffix(path) == suffix and image_id(path) == id_str
    assert is_fits(path) == suffix.startswith(".fit")


def test_paths_and_bytes_of_every_kind_decode_through_one_function(tmp_path):
    flux = simulated_flux(1)[0]
    png = tmp_path / "g.png"
    png.write_bytes(encode_png(stretch(flux)))
    expected = decode_image(png, 24, True)
    for layout in ("cube", "gzipped", "tile_compressed", "multi_hdu"):
        path = write_layout(tmp_path / layout, flux, layout)
        gzipped = path.read_bytes() if path.name.endswith(".gz") else gzip_bytes(path)
        for source in (path, str(path), path.read_bytes(), gzipped):
            np.testing.assert_array_equal(decode_image(source, 24, True, fits=SIMULATOR), expected)
    np.testing.assert_array_equal(
        decode_fits(path, 24, True, SIMULATOR), expected
    )  # the dispatcher adds nothing of its own
    assert load_image(path, 24, True, fits=SIMULATOR).max() <= 1.0


def test_fits_without_settings_and_fits_under_another_name_are_refused_with_reasons(tmp_path):
    path = write_layout(tmp_path / "g", simulated_flux(1)[0], "cube")
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError) as info:
            decode_image(source, 16, True)
        assert info.value.reason == NO_FITS_SETTINGS
    disguised = tmp_path / "g.png"
    disguised.write_bytes(path.read_bytes())
    with pytest.raises(ImageError) as info:
        decode_image(disguised, 16, True, fits=SIMULATOR)
    assert info.value.reason == MISNAMED_FITS


def test_filled_pixels_are_counted_and_png_has_none(tmp_path):
    flux = simulated_flux(1)[0]
    flux[0, :2, :3] = np.nan  # 6 pixels of g
    flux[2, 0, 0] = -np.inf  # 1 pixel of z
    path = write_layout(tmp_path / "g", flux, "cube")
    pixels, filled = decode_image_and_count_filled(path, 16, False, fits=SIMULATOR)
    assert filled == 6 and pixels.shape == (16, 16, 3)
    png = encode_png(stretch(simulated_flux(1)[0]))
    assert decode_image_and_count_filled(png, 16, False)[1] == 0


def test_settings_modules_do_not_import_astropy():
    # configs, specs and manifests are read everywhere; astropy (~0.4 s) only where FITS is read
    code = (
        "import sys, gz_experiments.config, gz_experiments.model_spec, gz_experiments.images, "
        "gz_experiments.shards.manifest; print('astropy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_spec_carries_fits_settings_and_older_specs_load_without():
    spec = dataclasses.replace(tiny_spec(), fits=SIMULATOR)
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    older = {k: v for k, v in tiny_spec().to_dict().items() if k != "fits"}
    assert ModelSpec.from_dict(older).fits is None
    broken = {**spec.to_dict(), "fits": {"bands": ["r"]}}
    with pytest.raises(UserError, match="FITS settings: missing fields"):
        ModelSpec.from_dict(broken)


def test_shards_stretched_otherwise_do_not_fit_the_model(tmp_path):
    spec = dataclasses.replace(tiny_spec(), fits=SIMULATOR)
    data = {"img_size": 32, "channels": 1, "label_cols": spec.label_cols, "fits": None}
    check_compatible(Manifest(tmp_path / "manifest.json", data), spec)  # PNG shards: fine
    same = {**data, "fits": {**SIMULATOR.to_dict(), "max_bad_fraction": 0.5}}
    check_compatible(Manifest(tmp_path / "manifest.json", same), spec)  # rejects differ only
    other = {**data, "fits": {**SIMULATOR.to_dict(), "white": 100.0}}
    with pytest.raises(UserError, match="stretched with other FITS settings"):
        check_compatible(Manifest(tmp_path / "manifest.json", other), spec)
