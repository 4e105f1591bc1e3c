"""FITS from training to serving: a model trained on FITS shards carries their FITS settings, and
predict (folders, catalogs, bytes), the predict step and the served pyfunc read FITS exactly as
the shards did (the same answers as for the same galaxies as PNG); broken FITS are skipped with
their reason, or a 400 from the server."""

from __future__ import annotations

import base64
import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest

from gz_experiments.config import Sampling, ShardConfig, TrainConfig
from gz_experiments.images import encode_png
from gz_experiments.images.decode import NO_FITS_SETTINGS
from gz_experiments.prediction.stream import predict
from gz_experiments.schema import get_schema
from gz_experiments.shards.manifest import load_manifest
from gz_experiments.shards.writer import run_shard
from gz_experiments.simulate.render import stretch
from gz_experiments.training.fit import fit

from .fits_files import BROKEN, LAYOUTS, gzip_bytes, simulated_flux, write_broken, write_layout

SCHEMA = get_schema("gzd5")
SAMPLING = Sampling(n_samples=3, seed=7)
# The layouts whose pixels equal the simulator's PNG of the same flux (not the one-band file).
COLOUR = [name for name in LAYOUTS if name != "single"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A debug model trained on FITS shards, with folders of the same galaxies as FITS / PNG."""
    root = tmp_path_factory.mktemp("fits-train")
    fluxes = simulated_flux(48)
    rows, votes = [], np.random.default_rng(0).integers(0, 5, (48, SCHEMA.n_answers))
    (root / "train").mkdir()
    for i, flux in enumerate(fluxes):
        path = write_layout(root / "train" / f"t{i}", flux, list(LAYOUTS)[i % len(LAYOUTS)])
        counts = dict(zip(SCHEMA.label_cols, votes[i], strict=True))
        rows.append({"id_str": f"t{i}", "file_loc": str(path), **counts})
    pd.DataFrame(rows).to_csv(root / "catalog.csv", index=False)
    shard_config = ShardConfig.resolve(
        "debug", catalog=str(root / "catalog.csv"), shard_dir=str(root / "shards"),
        img_size=32, fits_preset="simulator", n_workers=1,
    )  # fmt: skip
    run_shard(shard_config).check()
    manifest = load_manifest(root / "shards")
    config = TrainConfig.resolve("debug", shard_dir=str(root / "shards"), epochs=1,
                                 batch_size=8, image_size=16, verbose=0)  # fmt: skip
    result = fit(config, manifest, work_dir=root / "work")
    model = keras.models.load_model(result.model_path, compile=False)
    return model, result.spec, manifest, result.model_path, _twin_folders(root)


def _twin_folders(root):
    """(FITS folder: every colour layout + every broken file, PNG folder: the same galaxies under
    the same ids, so head-mode dropout masks, keyed by id, are the same too)."""
    fits_dir, png_dir = root / "predict-fits", root / "predict-png"
    fits_dir.mkdir()
    png_dir.mkdir()
    fluxes = simulated_flux(len(COLOUR), seed=5)
    for j, (layout, flux) in enumerate(zip(COLOUR, fluxes, strict=True)):
        write_layout(fits_dir / f"g{j}", flux, layout)
        (png_dir / f"g{j}.png").write_bytes(encode_png(stretch(flux)))
    for name in BROKEN:
        write_broken(fits_dir, name)
    return fits_dir, png_dir


def fits_files(fits_dir) -> list:
    return sorted(p for p in fits_dir.iterdir() if p.name.startswith("g"))


def test_training_copies_the_manifest_fits_settings_into_the_spec(trained):
    _, spec, manifest, _, _ = trained
    assert spec.fits is not None and spec.fits == manifest.fits
    simulator = ShardConfig.resolve("debug", fits_preset="simulator").fits_settings()
    assert spec.fits.same_pixels(simulator)


def test_a_fits_folder_predicts_exactly_like_its_pngs_and_skips_broken_files(trained):
    model, spec, *_, (fits_dir, png_dir) = trained
    from_fits = predict(model, spec, fits_dir, SAMPLING)
    from_png = predict(model, spec, png_dir, SAMPLING)
    # ids drop the whole suffix: g1.fits.gz and g1.png are both g1
    assert from_fits["id_str"].tolist() == [f"g{j}" for j in range(len(COLOUR))]
    pd.testing.assert_frame_equal(from_fits, from_png)  # the same pixels, the same answers
    skipped = {row["id_str"]: row["reason"] for row in from_fits.attrs["skipped"]}
    assert sorted(skipped) == sorted(BROKEN)
    for name, fragment in BROKEN.items():
        assert fragment in skipped[name]
    assert len(from_fits) + len(skipped) == len(COLOUR) + len(BROKEN)  # nothing dropped


def test_catalogs_and_bytes_of_fits_predict_like_their_files(trained, tmp_path):
    model, spec, *_, (fits_dir, png_dir) = trained
    files = fits_files(fits_dir)
    catalog = tmp_path / "c.csv"
    ids = [f"g{j}" for j in range(len(files))]
    pd.DataFrame({"id_str": ids, "file_loc": [str(f) for f in files]}).to_csv(catalog, index=False)
    expected = predict(model, spec, png_dir, SAMPLING)
    pd.testing.assert_frame_equal(predict(model, spec, catalog, SAMPLING), expected)
    # bytes have no name: told apart by content (plain, tile-compressed, gzipped)
    raw = [f.read_bytes() for f in files]
    gzipped = [gzip_bytes(f) if not f.name.endswith(".gz") else f.read_bytes() for f in files]
    pngs = [(png_dir / f"{i}.png").read_bytes() for i in ids]
    for data in (raw, gzipped):
        got = predict(model, spec, data, SAMPLING)
        pd.testing.assert_frame_equal(got, predict(model, spec, pngs, SAMPLING))


def test_a_model_without_fits_settings_refuses_fits_but_reads_png(trained):
    model, spec, *_, (fits_dir, png_dir) = trained
    old = dataclasses.replace(spec, fits=None)  # as a spec written before FITS support
    files = fits_files(fits_dir)
    frame = pd.DataFrame(
        {"id_str": ["fits", "png"], "file_loc": [str(files[0]), str(png_dir / "g0.png")]}
    )
    table = predict(model, old, frame, SAMPLING)
    assert table["id_str"].tolist() == ["png"]
    assert [row["reason"] for row in table.attrs["skipped"]] == [NO_FITS_SETTINGS]


def test_the_predict_step_and_the_served_model_read_fits(trained, tracking, tmp_path):
    import mlflow
    from mlflow.exceptions import MlflowException

    from entry_points import predict as predict_entry
    from gz_experiments.tracking.models import log_galaxy_model

    model, spec, _, model_path, (fits_dir, png_dir) = trained
    with mlflow.start_run() as run:
        log_galaxy_model(model_path, spec)
    uri = f"runs:/{run.info.run_id}/model"
    output = tmp_path / "out" / "predictions.csv"
    predict_entry.main(["--model-uri", uri, "--input", str(fits_dir), "--output", str(output),
                        "--n-samples", "3", "--seed", "7", "--preset", "cpu"])  # fmt: skip
    written = pd.read_csv(output, dtype={"id_str": str})
    assert written["id_str"].tolist() == [f"g{j}" for j in range(len(COLOUR))]
    step = mlflow.search_runs(filter_string="tags.`gz.step` = 'predict'", output_format="list")[0]
    skipped = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=step.info.run_id, artifact_path="skipped.csv", dst_path=str(tmp_path)))  # fmt: skip
    assert sorted(skipped["id_str"]) == sorted(BROKEN)
    assert step.data.metrics["n_skipped"] == len(BROKEN)

    served = mlflow.pyfunc.load_model(uri)
    files = fits_files(fits_dir)
    images = [base64.b64encode(f.read_bytes()).decode() for f in files]
    ids = [f"g{j}" for j in range(len(files))]
    answer = served.predict(pd.DataFrame({"image": images, "id_str": ids}), params={"seed": 7})
    expected = predict(model, spec, png_dir, Sampling(n_samples=5, seed=7))
    shared = [c for c in answer.columns if c in expected.columns]  # fractions, spreads, p_asked
    assert len(shared) > 2 * SCHEMA.n_answers and len(answer) == len(files)
    pd.testing.assert_frame_equal(answer[shared], expected[shared])
    broken = base64.b64encode(write_broken(tmp_path, "truncated").read_bytes()).decode()
    with pytest.raises(MlflowException, match="truncated file") as info:
        served.predict(pd.DataFrame({"image": [images[0], broken]}))
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"  # a 400 behind mlflow models serve
