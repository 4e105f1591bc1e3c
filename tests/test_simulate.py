"""The simulator: votes obey the tree, output is deterministic, images look like their class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gz_experiments.catalog import load_catalog
from gz_experiments.config import SimulateConfig
from gz_experiments.errors import UserError
from gz_experiments.schema import get_schema
from gz_experiments.simulate import default_dataset, simulate, simulate_votes
from gz_experiments.simulate.dataset import CATALOG, IMAGES, TRUTH, summarize
from gz_experiments.simulate.probabilities import true_probabilities
from gz_experiments.simulate.realism import question_summary, read_real_votes

from .conftest import shared_data

GZD5 = get_schema("gzd5")


@pytest.fixture(scope="module")
def votes():
    return simulate_votes(SimulateConfig.resolve("cpu", n_galaxies=2000, seed=3))


def tiny(tmp_path, name="sim", **overrides) -> SimulateConfig:
    values = {"n_galaxies": 24, "img_size": 16, "out_dir": str(tmp_path / name), "n_workers": 1}
    values.update(overrides)
    return SimulateConfig.resolve("debug", **values)


def test_counts_obey_the_tree_for_every_galaxy(votes):
    counts = votes.counts
    for question in GZD5.questions:
        total = counts[:, question.start : question.end + 1].sum(axis=1)
        if not question.parents:
            np.testing.assert_array_equal(total, votes.n_volunteers)
            continue
        reached = sum(counts[:, GZD5.answer(p).index] for p in question.parents)
        np.testing.assert_array_equal(total, reached, err_msg=question.name)
    assert GZD5.question("merging").parents == (
        "smooth-or-featured_smooth",
        "smooth-or-featured_featured-or-disk",
    )


def test_every_answer_of_every_question_occurs(votes):
    never = [
        col for col, n in zip(GZD5.label_cols, votes.counts.sum(axis=0), strict=True) if n == 0
    ]
    assert never == []


def test_true_probabilities_sum_to_one_per_question(votes):
    assert (votes.true_probs > 0).all()
    for question in GZD5.questions:
        sums = votes.true_probs[:, question.start : question.end + 1].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, atol=1e-9)


def test_vote_totals_follow_the_configured_mix(votes):
    totals = votes.n_volunteers
    low = totals <= 10
    assert 0.15 < low.mean() < 0.25  # low_vote_fraction = 0.2
    assert np.median(totals[~low]) == 40 and totals[~low].min() >= 37


def test_votes_are_deterministic_and_independent_of_n(votes):
    small = simulate_votes(SimulateConfig.resolve("cpu", n_galaxies=100, seed=3))
    np.testing.assert_array_equal(small.counts, votes.counts[:100])
    other = simulate_votes(SimulateConfig.resolve("cpu", n_galaxies=100, seed=4))
    assert not np.array_equal(other.counts, small.counts)


def test_faint_disks_are_called_smooth_more_often(votes):
    latents = dict(votes.latents)
    disk = latents["morphology"] == 1
    first = GZD5.question("smooth-or-featured")
    featured = first.start + 1
    bright = true_probabilities({**latents, "snr": np.full(disk.shape, 100.0)}, GZD5)
    faint = true_probabilities({**latents, "snr": np.full(disk.shape, 3.0)}, GZD5)
    assert faint[disk, featured].mean() < bright[disk, featured].mean() - 0.2
    assert faint[disk, first.start].mean() > bright[disk, first.start].mean() + 0.2


def test_only_gzd5_questions_can_be_simulated(votes):
    with pytest.raises(UserError, match="gzd5 questions only"):
        true_probabilities(votes.latents, get_schema("gz2"))


def test_first_question_is_broadly_like_real_gz_decals(votes):
    real = read_real_votes(shared_data("gzd5_q1_votes"))
    first = GZD5.questions[0]
    sim = pd.DataFrame(votes.counts, columns=GZD5.label_cols)
    sim_summary, real_summary = question_summary(sim, first), question_summary(real, first)
    for answer in first.answers:
        row = f"{answer.name} fraction"
        assert abs(sim_summary.loc[row, "mean"] - real_summary.loc[row, "mean"]) < 0.1, row
        assert abs(sim_summary.loc[row, "median"] - real_summary.loc[row, "median"]) < 0.15, row


def _folder_bytes(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_number_of_workers(tmp_path):
    # 140 galaxies span several latent chunks and worker tasks.
    one = simulate(tiny(tmp_path, "one", n_galaxies=140, n_workers=1), progress=False)
    two = simulate(tiny(tmp_path, "two", n_galaxies=140, n_workers=2), progress=False)
    files = _folder_bytes(one.parent)
    assert len([f for f in files if f.parts[0] == IMAGES]) == 140
    assert files == _folder_bytes(two.parent)
    other = simulate(tiny(tmp_path, "other", n_galaxies=140, seed=1), progress=False)
    assert other.read_bytes() != one.read_bytes()


def test_catalog_loads_and_matches_the_truth_table(tmp_path):
    catalog_path = simulate(tiny(tmp_path), progress=False)
    df = load_catalog(catalog_path, GZD5)
    assert len(df) == 24 and df["id_str"].is_unique
    raw = pd.read_csv(catalog_path)
    assert raw["file_loc"].str.startswith(f"{IMAGES}/").all()  # relative to the catalog folder
    truth = pd.read_parquet(catalog_path.parent / TRUTH)
    assert list(truth["id_str"]) == list(df["id_str"])
    assert {f"{c}_true" for c in GZD5.label_cols} <= set(truth.columns)
    assert set(truth["morphology"]) <= {"smooth", "disk", "artifact"}
    np.testing.assert_array_equal(truth["n_volunteers"], raw["smooth-or-featured_total-votes"])


def test_finished_folder_is_reused_and_a_foreign_one_refused(tmp_path):
    config = tiny(tmp_path)
    catalog_path = simulate(config, progress=False)
    stamp = catalog_path.stat().st_mtime_ns
    assert simulate(config.replace(n_workers=2), progress=False) == catalog_path
    assert catalog_path.stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="not empty"):
        simulate(config.replace(seed=5), progress=False)
    with pytest.raises(UserError, match="n_galaxies=0"):
        simulate(config.replace(n_galaxies=0), progress=False)


def test_default_dataset_is_cached_under_gz_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GZ_CACHE_DIR", str(tmp_path / "cache"))
    catalog_path = default_dataset("debug")
    assert catalog_path.is_relative_to(tmp_path / "cache") and catalog_path.name == CATALOG
    assert len(pd.read_csv(catalog_path)) == SimulateConfig.resolve("debug").n_galaxies
    stamp = catalog_path.stat().st_mtime_ns
    assert default_dataset("debug") == catalog_path
    assert catalog_path.stat().st_mtime_ns == stamp
    assert not [p for p in catalog_path.parent.parent.iterdir() if ".tmp-" in p.name]
    metrics = summarize(catalog_path)
    assert metrics["n_galaxies"] == 64
    assert sum(v for k, v in metrics.items() if k.startswith("galaxies/")) == 64


def test_entry_point_logs_params_counts_and_preview(tmp_path, tracking, capsys):
    from mlflow.tracking import MlflowClient

    from entry_points.simulate import main

    out = tmp_path / "entry"
    catalog_path = main(
        ["--preset", "debug", "--n-galaxies", "30", "--img-size", "24", "--out-dir", str(out)]
    ).catalog
    assert catalog_path == out / CATALOG and str(catalog_path) in capsys.readouterr().out
    client = MlflowClient()
    run = client.search_runs([client.get_experiment_by_name("test").experiment_id])[0]
    assert run.data.params["simulate.n_galaxies"] == "30"
    assert run.data.params["simulate.img_size"] == "24"
    assert sum(v for k, v in run.data.metrics.items() if k.startswith("galaxies/")) == 30
    assert run.data.metrics["mean_votes/smooth-or-featured"] > 0
    assert run.data.tags["gz.catalog"] == str(catalog_path.resolve())
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    logged |= {a.path for a in client.list_artifacts(run.info.run_id, "dataset")}
    assert {"preview.png", "dataset/catalog.csv", "dataset/truth.parquet"} <= logged


def test_entry_point_reports_bad_input_in_one_line(tmp_path, capsys):
    from entry_points.simulate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "debug", "--n-galaxies", "0", "--out-dir", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: invalid simulate config: n_galaxies=0 must be >= 1"
    )


def test_a_process_that_loses_the_race_uses_the_winners_folder(tmp_path):
    from gz_experiments.simulate.dataset import _publish, config_key

    config = tiny(tmp_path)
    winner = simulate(config, progress=False).parent
    loser = tmp_path / ".sim.tmp-loser"
    (loser / IMAGES).mkdir(parents=True)
    _publish(loser, winner, config_key(config))  # rename fails: the folder is taken and finished
    assert (winner / CATALOG).is_file() and loser.is_dir()
    with pytest.raises(OSError):
        _publish(loser, winner, "another-key")


def test_fits_format_writes_the_flux_of_the_same_galaxies(tmp_path):
    from astropy.io import fits

    from gz_experiments.images.fits import PRESETS, fits_to_uint8, read_fits
    from gz_experiments.simulate.dataset import config_key
    from gz_experiments.simulate.preview import preview_grid
    from gz_experiments.simulate.render import FIELD_ARCSEC

    png_config = tiny(tmp_path, "png")
    fits_config = tiny(tmp_path, "fits", image_format="fits")
    png, flux = simulate(png_config, progress=False), simulate(fits_config, progress=False)
    assert config_key(png_config) != config_key(fits_config)  # separate caches
    png_table, fits_table = pd.read_csv(png), pd.read_csv(flux)
    assert fits_table["file_loc"].tolist() == [f"{IMAGES}/{i}.fits" for i in fits_table["id_str"]]
    votes = [table.drop(columns="file_loc") for table in (png_table, fits_table)]
    pd.testing.assert_frame_equal(*votes)
    assert (png.parent / TRUTH).read_bytes() == (flux.parent / TRUTH).read_bytes()
    first = flux.parent / fits_table["file_loc"][0]
    with fits.open(first) as hdul:
        header, data = hdul[0].header, hdul[0].data
    assert data.shape == (3, 16, 16) and data.dtype.kind == "f"  # g, r, z flux (float32)
    assert (header["BANDS"], header["BAND2"]) == ("grz", "z")
    assert header["PIXSCALE"] == FIELD_ARCSEC / 16
    assert "-P fits_preset=simulator" in [str(c) for c in header["COMMENT"]][-1]
    settings = PRESETS["simulator"]
    stretched = fits_to_uint8(read_fits(first, settings), settings)
    from PIL import Image

    with Image.open(png.parent / png_table["file_loc"][0]) as image:
        np.testing.assert_array_equal(stretched, np.asarray(image))
    assert preview_grid(flux).axes  # the preview reads FITS datasets too
