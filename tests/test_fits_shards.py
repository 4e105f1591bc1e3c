"""FITS through the shard step: every layout, broken files in rejected.csv, the FITS settings in
config and manifest, and the simulator's FITS giving exactly the shards of its PNGs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from gz_experiments.config import ConfigError, ShardConfig, SimulateConfig
from gz_experiments.errors import UserError
from gz_experiments.images import decode_image, encode_png
from gz_experiments.schema import get_schema
from gz_experiments.shards.dataset import make_dataset
from gz_experiments.shards.manifest import Manifest
from gz_experiments.shards.writer import run_shard
from gz_experiments.simulate.dataset import simulate
from gz_experiments.simulate.render import stretch

from .fits_files import BROKEN, LAYOUTS, SIMULATOR, simulated_flux, write_broken, write_layout

LABELS = get_schema("gz1").label_cols
PER_LAYOUT = 3


def catalog(folder, paths: dict[str, str]) -> str:
    """A gz1 catalog of {id: image path} with made-up votes (sharding ignores them)."""
    votes = {col: 1.0 for col in LABELS}
    rows = [{"id_str": i, "file_loc": p, **votes} for i, p in paths.items()]
    path = folder / "catalog.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def config_for(cat: str, shard_dir, **overrides) -> ShardConfig:
    """Colour, 32 px, everything in train, stretched as the simulator's PNGs."""
    values = dict(catalog=cat, shard_dir=str(shard_dir), schema="gz1", img_size=32, n_workers=1)
    values.update(greyscale=False, fits_preset="simulator", val_fraction=0, test_fraction=0)
    return ShardConfig.resolve("debug", **{**values, **overrides})


def shard(cat: str, shard_dir, **overrides) -> Manifest:
    return run_shard(config_for(cat, shard_dir, **overrides)).manifest


def stored(manifest: Manifest, split: str = "train") -> dict[str, np.ndarray]:
    """{id: uint8 image} as the shards hold them."""
    ds = make_dataset(manifest, split, batch_size=64, training=False, with_ids=True)
    images, _, ids = (np.concatenate(p) for p in zip(*ds.as_numpy_iterator(), strict=True))
    return {i.decode(): np.rint(x * 255).astype(np.uint8) for i, x in zip(ids, images, strict=True)}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """{id: (path, flux)}: PER_LAYOUT simulated galaxies in each FITS layout."""
    folder = tmp_path_factory.mktemp("layouts")
    fluxes = simulated_flux(PER_LAYOUT * len(LAYOUTS))
    out = {}
    for k, layout in enumerate(LAYOUTS):
        for j in range(PER_LAYOUT):
            flux = fluxes[k * PER_LAYOUT + j]
            out[f"{layout}-{j}"] = (write_layout(folder / f"{layout}-{j}", flux, layout), flux)
    return out


def test_every_layout_shards_to_the_pixels_of_the_same_galaxy_as_png(layouts, tmp_path):
    manifest = shard(
        catalog(tmp_path, {i: str(p) for i, (p, _) in layouts.items()}), tmp_path / "s"
    )
    images = stored(manifest)
    assert sorted(images) == sorted(layouts) and manifest.counts["rejected"] == 0
    for id_str, (path, flux) in layouts.items():
        if id_str.startswith("single"):  # the r band in every channel: no PNG to compare with
            expected = decode_image(path, 32, False, fits=SIMULATOR)
            assert (expected[..., 0] != expected[..., 2]).any()  # per-channel scales apply
        else:  # the simulator's PNG of the same flux, decoded as a PNG is at shard time
            expected = decode_image(encode_png(stretch(flux)), 32, False)
        np.testing.assert_array_equal(images[id_str], expected, err_msg=id_str)


def test_broken_fits_are_rejected_with_reasons_and_the_counts_reconcile(layouts, tmp_path):
    good = {i: str(p) for i, (p, _) in list(layouts.items())[:6]}
    holes = simulated_flux(1, seed=3)[0]
    holes[1, 5, :7] = np.nan  # 7 NaN pixels in r: filled with the sky and counted
    holes[0, 0, 0] = np.inf
    good["holes"] = str(write_layout(tmp_path / "holes", holes, "cube"))
    broken = {name: str(write_broken(tmp_path, name)) for name in BROKEN}
    manifest = shard(
        catalog(tmp_path, {**good, **broken}), tmp_path / "s", max_rejected_fraction=0.5
    )
    rejected = pd.read_csv(manifest.rejected_path).set_index("id_str")
    assert sorted(rejected.index) == sorted(BROKEN)
    for name, fragment in BROKEN.items():
        assert fragment in rejected.loc[name, "reason"], (name, rejected.loc[name, "reason"])
    counts = manifest.counts
    assert counts["written"] == len(good) and counts["rejected"] == len(BROKEN)
    assert counts["written"] + counts["rejected"] == counts["catalog_rows"]
    assert (counts["fits_filled_images"], counts["fits_filled_pixels"]) == (1, 7)  # worst band
    files = manifest.data["splits"]["train"]["files"]
    assert {k: v for f in files for k, v in f["filled_pixels"].items()} == {"holes": 7}


def test_manifest_records_fits_settings_only_when_the_catalog_names_fits(layouts, tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(encode_png(stretch(simulated_flux(1)[0])))
    plain = shard(catalog(tmp_path, {"a": str(png)}), tmp_path / "png")
    assert "fits" not in plain.data and "fits" not in plain.data["inputs"] and plain.fits is None

    (tmp_path / "mixed").mkdir()
    paths = {"a": str(png), **{i: str(p) for i, (p, _) in list(layouts.items())[:3]}}
    cat = catalog(tmp_path / "mixed", paths)
    mixed = shard(cat, tmp_path / "m", fits_stretch={"white": "400"})
    expected = SIMULATOR.to_dict() | {"white": 400.0}
    assert json.loads(mixed.path.read_text())["fits"] == expected == mixed.data["inputs"]["fits"]
    assert mixed.fits.white == 400.0 and mixed.counts["written"] == 4
    again = run_shard(config_for(cat, tmp_path / "m", fits_stretch={"white": "400"}))
    assert again.files_written == 0  # same inputs: nothing rewritten
    with pytest.raises(UserError, match="changed: fits"):  # another stretch: other pixels
        shard(cat, tmp_path / "m")


def test_simulated_fits_and_png_datasets_give_the_same_shards(tmp_path):
    manifests = {}
    for fmt in ("png", "fits"):
        config = SimulateConfig.resolve(
            "debug", out_dir=str(tmp_path / fmt), n_galaxies=24, img_size=40, image_format=fmt
        )
        cat = simulate(config, progress=False)
        manifests[fmt] = run_shard(
            ShardConfig.resolve(
                "debug",
                catalog=str(cat),
                shard_dir=str(tmp_path / f"{fmt}-s"),
                img_size=32,
                fits_preset="simulator",
                n_workers=1,
            )  # fmt: skip
        ).manifest
    for split in ("train", "val", "test"):
        png, fits = stored(manifests["png"], split), stored(manifests["fits"], split)
        assert list(png) == list(fits)  # the same galaxies in the same order
        for id_str in png:  # greyscale, 40 -> 32 px: exactly equal, not merely close
            np.testing.assert_array_equal(png[id_str], fits[id_str])
    catalogs = [pd.read_parquet(m.catalog_path("train")) for m in manifests.values()]
    votes = [c.drop(columns=["file_loc", "shard_file"]) for c in catalogs]
    pd.testing.assert_frame_equal(*votes)


def test_fits_fields_of_the_shard_config_validate_and_read_from_text():
    config = ShardConfig.from_strings(
        "debug", {"fits_bands": "r", "fits_scales": "71.4", "fits_stretch": "white=100,black=-1"}
    )
    settings = config.fits_settings()
    assert (settings.bands, settings.scales, settings.white, settings.black) == (
        ("r",), (71.4,), 100.0, -1.0
    )  # fmt: skip
    assert settings.softening == 1.0  # the rest from the decals preset
    assert config.flatten()["shard.fits_stretch.white"] == "100"
    bad = {
        "3 scales for 1 bands": {"fits_bands": ("r",)},
        "unknown key(s) ['gamma']": {"fits_stretch": {"gamma": "2"}},
        "white='x' is not a number": {"fits_stretch": {"white": "x"}},
        "must be above black": {"fits_stretch": {"white": "-3"}},
        "fits_preset='sdss' is not one of decals, simulator": {"fits_preset": "sdss"},
        "fits_max_bad_fraction=1.0 must be < 1": {"fits_max_bad_fraction": 1.0},
    }
    for fragment, values in bad.items():
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            ShardConfig.resolve("debug", **values)


def test_shard_entry_point_takes_the_fits_flags(layouts, tmp_path, tracking, capsys):
    from entry_points import shard as shard_entry

    cat = catalog(tmp_path, {i: str(p) for i, (p, _) in list(layouts.items())[:10]})
    shard_entry.main(
        ["--preset", "debug", "--catalog", cat, "--shard-dir", str(tmp_path / "s"),
         "--schema", "gz1", "--n-workers", "1", "--fits-bands", "r", "--fits-scales", "1",
         "--fits-stretch", "softening=2,white=50", "--fits-max-bad-fraction", "0.1"]
    )  # fmt: skip
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["fits"] == {
        "bands": ["r"], "scales": [1.0], "offset": 0.0, "softening": 2.0, "black": -0.5,
        "white": 50.0, "max_bad_fraction": 0.1,
    }  # fmt: skip
    assert "rejected 0" in capsys.readouterr().out
