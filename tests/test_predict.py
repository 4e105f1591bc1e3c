"""Predictions: MC sampling modes, output columns, input kinds, streaming, skipped galaxies."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from gz_experiments.atomic import write_table
from gz_experiments.config import ConfigError, Sampling
from gz_experiments.errors import UserError
from gz_experiments.prediction.sampling import Sampler, compiled
from gz_experiments.prediction.stream import predict, predict_to_file
from gz_experiments.prediction.tables import output_columns, summarise
from gz_experiments.schema import get_schema
from gz_experiments.serving.model import predict_frame

from .tiny_models import linked_folder, real_images, save_tiny_model, tiny_spec

SCHEMA = get_schema("gzd5")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(keras model, spec): an untrained small_cnn taking 32px greyscale, dropout 0.5."""
    import keras

    spec = tiny_spec()
    path = save_tiny_model(tmp_path_factory.mktemp("model") / "m.keras", spec)
    return keras.models.load_model(path, compile=False), spec


@pytest.fixture(scope="module")
def real_pngs():
    return real_images()


def png_bytes(seed: int = 0, size: int = 40) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def check_table(df: pd.DataFrame, n_samples: int, acquisition: bool = False) -> None:
    assert list(df.columns) == output_columns(SCHEMA, n_samples, acquisition=acquisition)
    for q in SCHEMA.questions:
        sums = df[[f"{c}_fraction" for c in q.label_cols]].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    np.testing.assert_allclose(df["smooth-or-featured_p_asked"], 1.0)
    assert (
        ((df.filter(like="_p_asked") >= 0) & (df.filter(like="_p_asked") <= 1 + 1e-6)).all().all()
    )


def test_summarise_uses_the_per_question_dirichlet_mean_and_its_spread():
    concentrations = np.ones((1, 2, SCHEMA.n_answers))
    concentrations[0, 0, 0], concentrations[0, 1, 0] = 2.0, 4.0  # smooth in pass 0 and pass 1
    df = summarise(["g"], concentrations, SCHEMA, keep=True)
    # smooth-or-featured has 3 answers: means 2/4 and 4/6 -> expected 7/12, spread 1/12
    assert df["smooth-or-featured_smooth_fraction"][0] == pytest.approx(7 / 12)
    assert df["smooth-or-featured_smooth_fraction_std"][0] == pytest.approx(1 / 12)
    assert df["smooth-or-featured_smooth_concentration_1"][0] == 4.0
    assert df["disk-edge-on_yes_fraction_std"][0] == 0.0
    check_table(df, n_samples=2)


def test_head_mode_without_dropout_equals_a_deterministic_pass(tiny):
    import keras

    model = keras.models.clone_model(tiny[0])
    model.set_weights(tiny[0].get_weights())
    model.get_layer("head").get_layer("dropout").rate = 0.0
    images = np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32)
    samples = Sampler(model, Sampling(n_samples=4))(images, ["a", "b", "c"])
    assert samples.shape == (3, 4, SCHEMA.n_answers)
    expected = model(images, training=False).numpy()
    for i in range(4):
        np.testing.assert_allclose(samples[:, i], expected, rtol=1e-5)


def test_head_and_full_modes_sample_different_dropout_masks(tiny):
    model, _ = tiny
    images = np.random.default_rng(1).random((2, 32, 32, 1), dtype=np.float32)
    for mode in ("head", "full"):
        samples = Sampler(model, Sampling(n_samples=5, mc_mode=mode))(images, ["a", "b"])
        assert samples.shape == (2, 5, SCHEMA.n_answers)
        assert np.all(samples > 1.0) and np.all(samples < 101.0)
        assert np.ptp(samples, axis=1).max() > 1e-3, f"{mode}: all passes identical"


def test_folder_of_real_images_skips_a_corrupt_one_and_reports_it(tiny, real_pngs, tmp_path):
    folder = linked_folder(tmp_path / "images", real_pngs[:5])
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.png").symlink_to(real_pngs[5])
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / ".DS_Store").write_bytes(b"hidden files are ignored")
    df = predict(tiny[0], tiny[1], folder, Sampling(n_samples=3, batch_size=4))
    check_table(df, n_samples=3)
    assert len(df) == 6
    assert "sub/extra" in set(df["id_str"]) and real_pngs[0].stem in set(df["id_str"])
    skipped = pd.DataFrame(df.attrs["skipped"])
    assert skipped["id_str"].tolist() == ["broken"]
    assert "PNG or JPEG" in skipped["reason"][0]
    df.to_parquet(tmp_path / "table.parquet")  # the skipped list travels as plain data


def test_unsupported_files_in_a_folder_are_listed(tiny, tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "cube.hdf5").write_bytes(b"x")
    with pytest.raises(UserError, match=r"2 file\(s\) are not .*cube.hdf5, notes.txt"):
        predict(tiny[0], tiny[1], tmp_path)


@pytest.mark.parametrize("source", ["empty_dir", "empty_list", "missing"])
def test_empty_or_missing_input_is_a_clear_error(tiny, tmp_path, source):
    (tmp_path / "empty_dir").mkdir()
    given = {"empty_dir": tmp_path / "empty_dir", "empty_list": [], "missing": tmp_path / "nope"}
    with pytest.raises(UserError, match="no galaxies|no such file"):
        predict(tiny[0], tiny[1], given[source])


def test_catalog_streams_to_parquet_batch_by_batch(tiny, real_pngs, tmp_path):
    rows = [{"id_str": p.stem, "file_loc": str(p)} for p in real_pngs[:7]]
    rows.append({"id_str": "gone", "file_loc": "images/missing.png"})  # relative to the catalog
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame(rows).to_csv(catalog, index=False)
    out = tmp_path / "out" / "predictions.parquet"
    report = predict_to_file(
        tiny[0], tiny[1], catalog, out, Sampling(n_samples=2, batch_size=3), progress=False
    )
    assert (report.n_predicted, len(report.skipped), report.n_inputs) == (7, 1, 8)
    assert report.skipped[0][0] == "gone" and "not found" in report.skipped[0][2]
    # one row group per batch: rows were written as they came, not gathered in memory
    assert pq.ParquetFile(out).num_row_groups == 3
    df = pd.read_parquet(out)
    check_table(df, n_samples=2)
    assert df["id_str"].tolist() == [p.stem for p in real_pngs[:7]]


def test_csv_output_matches_the_in_memory_table(tiny, real_pngs, tmp_path):
    report = predict_to_file(
        tiny[0], tiny[1], real_pngs[:3], tmp_path / "p.csv", Sampling(n_samples=2), progress=False
    )
    df = pd.read_csv(tmp_path / "p.csv", dtype={"id_str": str})
    assert report.n_predicted == 3
    check_table(df, n_samples=2)


def test_frame_with_base64_and_bytes_images_keeps_ids_and_rows(tiny):
    b64 = base64.b64encode(png_bytes(1)).decode()
    frame = pd.DataFrame({"image": [b64, png_bytes(2), f"data:image/png;base64,{b64}"],
                          "id_str": ["a", "b", "c"]})  # fmt: skip
    df = predict_frame(tiny[0], tiny[1], frame, Sampling(n_samples=2))
    assert df["id_str"].tolist() == ["a", "b", "c"]
    assert list(df.columns) == output_columns(SCHEMA, n_samples=0, acquisition=True)
    check_table(df, n_samples=0, acquisition=True)


def test_frame_with_an_unreadable_image_names_the_row(tiny):
    frame = pd.DataFrame({"image": [base64.b64encode(png_bytes()).decode(), "%%%not-base64%%%"]})
    with pytest.raises(UserError, match="row 1 .*base64"):
        predict_frame(tiny[0], tiny[1], frame, Sampling())
    with pytest.raises(UserError, match="'file_loc' .* or 'image'"):
        predict_frame(tiny[0], tiny[1], pd.DataFrame({"path": ["x.png"]}), Sampling())


def test_shard_folder_predicts_its_split_in_manifest_order(tiny, real_pngs, tmp_path):
    from gz_experiments.config import ShardConfig
    from gz_experiments.shards.writer import run_shard

    catalog = tmp_path / "unlabelled.csv"
    pd.DataFrame({"id_str": [p.stem for p in real_pngs[:6]], "file_loc": real_pngs[:6]}).to_csv(
        catalog, index=False
    )
    config = ShardConfig.resolve(
        "debug", unlabelled_catalog=str(catalog), img_size=32, shard_size=4,
        shard_dir=str(tmp_path / "shards"), schema="gzd5", n_workers=1,
    )  # fmt: skip
    run_shard(config, progress=False)
    df = predict(tiny[0], tiny[1], tmp_path / "shards", Sampling(n_samples=2, batch_size=4))
    assert df["id_str"].tolist() == [p.stem for p in real_pngs[:6]]  # the catalog's order
    check_table(df, n_samples=2)
    with pytest.raises(UserError, match="32 px, the model takes 64 px"):
        predict(tiny[0], tiny_spec(img_size=64), tmp_path / "shards")


def test_samplers_are_compiled_once_per_model_and_setting(tiny):
    model = tiny[0]
    assert compiled(model, 3, "head") is compiled(model, 3, "head")
    assert compiled(model, 3, "head") is not compiled(model, 3, "full")
    with pytest.raises(ConfigError, match="mc_mode='both' is not one of head, full"):
        Sampling(n_samples=3, mc_mode="both")
    with pytest.raises(ConfigError, match="n_samples=100000 must be <= 100"):
        Sampling(n_samples=100000)


@pytest.mark.parametrize("mode", ["head", "full"])
def test_a_seed_reproduces_the_mc_samples(tiny, real_pngs, mode):
    model, spec = tiny
    first = predict(model, spec, real_pngs[:3], Sampling(n_samples=3, mc_mode=mode, seed=7))
    again = predict(model, spec, real_pngs[:3], Sampling(n_samples=3, mc_mode=mode, seed=7))
    other = predict(model, spec, real_pngs[:3], Sampling(n_samples=3, mc_mode=mode, seed=8))
    values = first.columns[1:]
    np.testing.assert_array_equal(first[values].to_numpy(), again[values].to_numpy())
    assert not np.allclose(first[values].to_numpy(), other[values].to_numpy())


def test_head_mode_samples_of_a_galaxy_do_not_depend_on_its_batch_or_order(tiny, real_pngs):
    """What lets a Spark job and a local run agree: masks come from (seed, id_str) alone."""
    model, spec = tiny
    sampling = Sampling(n_samples=4, seed=3)
    whole = predict(model, spec, real_pngs[:7], sampling.replace(batch_size=7))
    pieces = predict(model, spec, real_pngs[6::-1], sampling.replace(batch_size=2))
    pieces = pieces.set_index("id_str").loc[whole["id_str"]].reset_index()
    values = whole.columns[1:]
    np.testing.assert_allclose(whole[values].to_numpy(), pieces[values].to_numpy(), rtol=1e-5)


def test_a_bomb_in_a_folder_is_skipped_with_its_reason(tiny, real_pngs, tmp_path):
    from .conftest import write_png_bomb

    (tmp_path / "ok.png").symlink_to(real_pngs[0])
    write_png_bomb(tmp_path / "bomb.png")
    df = predict(tiny[0], tiny[1], tmp_path, Sampling(n_samples=2))
    assert df["id_str"].tolist() == ["ok"]
    (skipped,) = df.attrs["skipped"]
    assert skipped["id_str"] == "bomb" and "169,000,000 pixels" in skipped["reason"]


def test_two_images_with_one_id_in_a_folder_are_an_error(tiny, tmp_path):
    (tmp_path / "dup.png").write_bytes(png_bytes(1))
    (tmp_path / "dup.jpg").write_bytes(png_bytes(2))
    (tmp_path / "other.png").write_bytes(png_bytes(3))
    with pytest.raises(UserError, match=r"2 images share an id .*dup.jpg.*dup.png"):
        predict(tiny[0], tiny[1], tmp_path)


def test_served_file_access_refuses_every_path_alike(tiny, real_pngs, tmp_path):
    """The in-process check behind the served model (the real server: test_e2e_serve.py)."""
    from gz_experiments.prediction.inputs import REFUSED_PATH, FileAccess

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "g.png").write_bytes(real_pngs[0].read_bytes())
    (allowed / "link.png").symlink_to(real_pngs[0])  # a link out of the folder is outside too
    access = FileAccess(roots=(allowed.resolve(),))
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes())
    frame = pd.DataFrame(
        {"file_loc": [str(allowed / "g.png"), str(outside), str(allowed / ".." / "secret.png"),
                      "/no/such/file.png", "/etc/hostname", str(allowed / "link.png")]}
    )  # fmt: skip
    report_rows = predict_frame_rows(tiny, frame, access)
    assert report_rows == [None] + [REFUSED_PATH] * 5
    nowhere = predict_frame_rows(tiny, frame.iloc[:1], FileAccess(roots=()))
    assert nowhere == [REFUSED_PATH]


def predict_frame_rows(tiny, frame, access):
    """The reason each row could not be read (None when it was predicted)."""
    from gz_experiments.prediction.stream import PredictionReport, iter_predictions

    report = PredictionReport(output=None)
    rows = list(iter_predictions(tiny[0], tiny[1], frame, report, Sampling(n_samples=1),
                                 access=access))  # fmt: skip
    predicted = set(pd.concat(rows)["id_str"]) if rows else set()
    reasons = {id_str: reason for id_str, _, reason in report.skipped}
    return [None if str(i) in predicted else reasons[str(i)] for i in range(len(frame))]


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_predicted(tiny, real_pngs, tmp_path):
    folder = linked_folder(tmp_path / "images", real_pngs[:2])
    os.symlink(real_pngs[2], os.fsencode(folder) + b"/caf\xe9.png")  # Latin-1 bytes in a name
    out = tmp_path / "p.csv"
    report = predict_to_file(tiny[0], tiny[1], folder, out, Sampling(n_samples=1), progress=False)
    assert (report.n_predicted, len(report.skipped)) == (2, 1)
    assert report.skipped[0][0] == "caf\\xe9" and "not valid UTF-8" in report.skipped[0][2]
    write_table(report.skipped_frame(), tmp_path / "skipped.csv")  # writable as it is shown
    assert len(pd.read_csv(out)) == 2


def test_an_output_that_is_a_folder_is_refused_before_any_work(tiny, tmp_path, monkeypatch):
    from gz_experiments.prediction import stream

    monkeypatch.setattr(stream, "iter_predictions", lambda *a, **k: pytest.fail("work was done"))
    with pytest.raises(UserError, match="is a folder; give a file name"):
        predict_to_file(tiny[0], tiny[1], [png_bytes()], tmp_path, Sampling(), progress=False)


def test_a_failed_write_leaves_no_torn_output(tiny, real_pngs, tmp_path, monkeypatch):
    """A disk that fills up mid-table: the previous file stays whole, no partial file appears."""
    out = tmp_path / "p.csv"
    out.write_text("the previous predictions\n")
    written = []

    def full_disk(self, path, *args, **kwargs):
        if written:  # the header and the first chunk fit, the next one does not
            raise OSError(28, "No space left on device")
        written.append(path)
        return to_csv(self, path, *args, **kwargs)

    to_csv = pd.DataFrame.to_csv
    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(OSError, match="No space left"):
        predict_to_file(tiny[0], tiny[1], real_pngs[:6], out, Sampling(n_samples=1, batch_size=2),
                        progress=False)  # fmt: skip
    assert out.read_text() == "the previous predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tiny, real_pngs, tmp_path):
    """OWASP's rule for the CSV outputs; parquet keeps the ids exactly."""
    ids = ["=cmd|' /C calc'!A0", "+SUM(1,1)", "@x", "-2+3", "plain"]
    frame = pd.DataFrame({"id_str": ids, "file_loc": [str(p) for p in real_pngs[:4]] + ["/no"]})
    for name in ("p.csv", "p.parquet"):
        report = predict_to_file(tiny[0], tiny[1], frame, tmp_path / name, Sampling(n_samples=1),
                                 progress=False)  # fmt: skip
    written = pd.read_csv(tmp_path / "p.csv", dtype={"id_str": str})["id_str"].tolist()
    assert written == ["'=cmd|' /C calc'!A0", "'+SUM(1,1)", "'@x", "'-2+3"]
    assert pd.read_parquet(tmp_path / "p.parquet")["id_str"].tolist() == ids[:4]
    write_table(report.skipped_frame().assign(id_str=["=1+1"]), tmp_path / "skipped.csv")
    assert pd.read_csv(tmp_path / "skipped.csv")["id_str"].tolist() == ["'=1+1"]
    assert pd.read_csv(tmp_path / "p.csv").filter(like="_fraction").dtypes.eq(float).all()


def test_predict_on_a_named_pipe_skips_it_instead_of_hanging(tiny, real_pngs, tmp_path):
    """A real predict process: a catalog row naming a FIFO was opened, and open() blocked."""
    import subprocess
    import sys

    from .conftest import REPO

    model = save_tiny_model(tmp_path / "m.keras", tiny_spec())
    os.mkfifo(tmp_path / "pipe.png")
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame({"id_str": ["pipe", "good"],
                  "file_loc": [str(tmp_path / "pipe.png"), str(real_pngs[0])]}).to_csv(catalog)  # fmt: skip
    script = (
        "import sys, keras; from tests.tiny_models import tiny_spec; "
        "from gz_experiments.config import Sampling; "
        "from gz_experiments.prediction.run import predict_to_file; "
        "r = predict_to_file(keras.models.load_model(sys.argv[1], compile=False), tiny_spec(), "
        "sys.argv[2], sys.argv[3], Sampling(n_samples=1), progress=False); "
        "print(r.n_predicted, r.skipped[0][2])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(model), str(catalog), str(tmp_path / "p.parquet")],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1 not a regular file (a folder, pipe, socket or device)"
