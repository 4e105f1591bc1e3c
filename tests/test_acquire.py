"""Acquisition columns in predict's table and the served output, and the `acquire` step on real
images (ranking, batching, kinds, questions, the logged run)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from gz_experiments.acquisition import DEFAULT_N_VOLUNTEERS, KINDS, acquisition_columns
from gz_experiments.acquisition.run import TopK, output_columns, run_acquire
from gz_experiments.config import AcquireConfig, ConfigError, PredictConfig, Sampling
from gz_experiments.config.acquisition import ACQUISITIONS
from gz_experiments.errors import UserError
from gz_experiments.prediction import tables
from gz_experiments.prediction.parameters import SKIPPED_REASON
from gz_experiments.prediction.run import run_predict
from gz_experiments.prediction.stream import predict
from gz_experiments.schema import get_schema
from gz_experiments.serving.model import predict_frame
from gz_experiments.tracking.models import signature_for

from .conftest import shared_data
from .tiny_models import REAL_IMAGES, linked_folder, real_images, save_tiny_model, tiny_spec

SCHEMA = get_schema("gzd5")
N_REAL = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import keras

    spec = tiny_spec()
    path = save_tiny_model(tmp_path_factory.mktemp("model") / "m.keras", spec)
    (path.parent / "model_spec.json").write_text(json.dumps(spec.to_dict()))  # a loadable folder
    return keras.models.load_model(path, compile=False), spec, path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 real DECaLS PNGs (links) and one file that is not an image."""
    folder = linked_folder(tmp_path_factory.mktemp("unlabelled"), real_images(N_REAL))
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def acquire(tiny, folder, tmp_path, **fields):
    values = {"model_uri": "unused", "input": str(folder), "k": 5, "n_samples": 4} | fields
    config = AcquireConfig.resolve("debug", **values)
    return run_acquire(config, tiny[0], tiny[1], tmp_path, progress=False)


def read(result) -> pd.DataFrame:
    path = result.table
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def test_config_choices_match_the_library():
    assert ACQUISITIONS == KINDS
    assert PredictConfig().n_volunteers == AcquireConfig().n_volunteers == DEFAULT_N_VOLUNTEERS
    with pytest.raises(ConfigError, match="names a question twice"):
        AcquireConfig(questions=("bar", "bar"))
    with pytest.raises(ConfigError, match="acquisition='margin' is not one of"):
        AcquireConfig(acquisition="margin")


def test_predict_table_acquisition_columns_come_from_its_own_samples(tiny, folder):
    df = predict(tiny[0], tiny[1], folder, Sampling(n_samples=3), n_volunteers=6)
    assert list(df.columns) == tables.output_columns(SCHEMA, 3, acquisition=True)
    assert len(df) == N_REAL and len(df.attrs["skipped"]) == 1
    samples = np.stack(
        [df[[f"{c}_concentration_{i}" for c in SCHEMA.label_cols]].to_numpy() for i in range(3)],
        axis=1,
    )
    expected = acquisition_columns(samples, SCHEMA, 6)
    for name, values in expected.items():
        np.testing.assert_allclose(df[name], values, rtol=1e-4, atol=1e-7)
    p_asked = df[[f"{q.name}_p_asked" for q in SCHEMA.questions]].to_numpy()
    bald = df[[f"{q.name}_bald" for q in SCHEMA.questions]].to_numpy()
    np.testing.assert_allclose(df["acquisition_bald"], (p_asked * bald).sum(1), rtol=1e-4)
    entropy = df[[f"{q.name}_predictive_entropy" for q in SCHEMA.questions]].to_numpy()
    assert np.all(bald >= 0) and np.all(bald <= entropy + 1e-6) and np.all(bald.sum(1) > 0)


@pytest.mark.parametrize("with_columns", [True, False])
def test_predict_step_adds_acquisition_columns_unless_asked_not_to(tiny, folder, tmp_path,
                                                                    with_columns):  # fmt: skip
    config = PredictConfig.resolve(
        "debug", model_uri="unused", input=str(folder), output=str(tmp_path / "p.csv"),
        n_samples=2, acquisition_columns=with_columns,
    )  # fmt: skip
    result = run_predict(config, tiny[0], tiny[1], tmp_path)
    df = pd.read_csv(result.table, dtype={"id_str": str})
    assert list(df.columns) == tables.output_columns(SCHEMA, 2, acquisition=with_columns)
    assert result.report.n_predicted == N_REAL


def test_served_output_matches_the_signature_and_carries_acquisition(tiny, folder):
    frame = pd.DataFrame({"file_loc": sorted(str(p) for p in folder.glob("J*.png"))[:3]})
    served = predict_frame(tiny[0], tiny[1], frame, Sampling(n_samples=3))
    outputs = signature_for(tiny[1]).outputs.input_names()
    assert list(served.columns) == [name for name in outputs if name != SKIPPED_REASON]
    assert {"acquisition_bald", "bar_bald", "bar_predictive_entropy"} <= set(outputs)
    assert (served["acquisition_bald"] > 0).all()


def test_a_model_logged_with_the_old_signature_still_serves(tracking, tiny, monkeypatch):
    """Registered before the acquisition columns: MLflow does not enforce outputs."""
    from gz_experiments.tracking import models as tracking_models

    monkeypatch.setattr(
        tracking_models,
        "output_columns",
        lambda schema, n_samples, acquisition=False: tables.output_columns(schema, n_samples),
    )
    with mlflow.start_run():
        info = tracking_models.log_galaxy_model(tiny[2], tiny[1])
    assert "acquisition_bald" not in info.signature.outputs.input_names()
    png = sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[0]
    out = mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame({"file_loc": [str(png)]}))
    assert list(out.columns) == tables.output_columns(SCHEMA, 0, acquisition=True)


def test_acquire_keeps_the_top_k_by_bald_of_a_real_folder(tiny, folder, tmp_path):
    result = acquire(tiny, folder, tmp_path / "out", output=str(tmp_path / "top.csv"))
    table = read(result)
    questions = tuple(q.name for q in SCHEMA.questions)
    assert list(table.columns) == output_columns(questions)
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert np.all(np.diff(table["score"]) <= 0)
    # The same samples through predict: its acquisition_bald ranks the galaxies the same way.
    whole = predict(tiny[0], tiny[1], folder, Sampling(n_samples=4), n_volunteers=10)
    best = whole.sort_values("acquisition_bald", ascending=False, kind="stable").head(5)
    assert table["id_str"].tolist() == best["id_str"].tolist()
    np.testing.assert_allclose(table["score"], best["acquisition_bald"], rtol=1e-4)
    # counts reconcile; the broken file is listed, not dropped
    report = result.report
    assert (report.n_predicted, len(report.skipped), report.n_inputs) == (N_REAL, 1, N_REAL + 1)
    assert pd.read_csv(result.skipped_table)["id_str"].tolist() == ["broken"]
    assert result.n_selected == 5 and result.selected_scores[0] == table["score"][0]
    with Image.open(result.grid) as grid:
        assert grid.format == "PNG" and grid.width > 300
    assert "chose 5" in result.summary() and "skipped 1" in result.summary()


def test_acquire_does_not_depend_on_the_batch_size(tiny, folder, tmp_path):
    for kind in ("bald", "random"):
        small = read(acquire(tiny, folder, tmp_path / "a", batch_size=3, acquisition=kind))
        large = read(acquire(tiny, folder, tmp_path / "b", batch_size=16, acquisition=kind))
        pd.testing.assert_frame_equal(small, large, rtol=1e-5)


def test_entropy_on_chosen_questions_and_seeded_random(tiny, folder, tmp_path):
    entropy = read(acquire(tiny, folder, tmp_path, acquisition="entropy", questions=("bar",)))
    assert list(entropy.columns) == output_columns(("bar",))
    np.testing.assert_allclose(
        entropy["score"], entropy["bar_p_asked"] * entropy["bar_predictive_entropy"], rtol=1e-5
    )
    first = read(acquire(tiny, folder, tmp_path, acquisition="random", k=20, seed=1))
    again = read(acquire(tiny, folder, tmp_path, acquisition="random", k=20, seed=1))
    other = read(acquire(tiny, folder, tmp_path, acquisition="random", k=20, seed=2))
    assert len(first) == N_REAL  # k larger than the folder: every galaxy, ranked
    assert first["id_str"].tolist() == again["id_str"].tolist() != other["id_str"].tolist()
    assert first["score"].between(0, 1).all()


def test_unknown_questions_are_a_user_error(tiny, folder, tmp_path):
    with pytest.raises(UserError, match=r"questions=bars: .*no question\(s\) \['bars'\]"):
        acquire(tiny, folder, tmp_path, questions=("bars",))


def test_top_k_pruning_keeps_the_best_rows_in_input_order(monkeypatch):
    monkeypatch.setattr("gz_experiments.acquisition.run.PRUNE_ROWS", 3)
    scores = np.random.default_rng(0).integers(0, 5, 60).astype(float)  # many ties
    top = TopK(k=4, grid_size=3)
    for start in range(0, 60, 7):
        part = scores[start : start + 7]
        rows = pd.DataFrame({"id_str": [f"g{i}" for i in range(start, start + len(part))]})
        top.add(rows.assign(score=part), np.zeros((len(part), 2, 2, 1)))
    order = np.lexsort((np.arange(60), -scores))
    assert top.best()["id_str"].tolist() == [f"g{i}" for i in order[:4]]
    assert [e[2] for e in top.grid_entries()] == [f"g{i}" for i in order[:3]]
    assert top.buffered < 60  # it did prune on the way


def test_acquire_entry_point_logs_its_choice(tracking, tiny, folder, capsys):
    from entry_points import acquire as entry

    entry.main(["--preset", "debug", "--model-uri", str(tiny[2]), "--input", str(folder),
                "--k", "3", "--acquisition", "bald", "--n-samples", "3"])  # fmt: skip
    assert "chose 3" in capsys.readouterr().err
    run = MlflowClient().search_runs([mlflow.get_experiment_by_name("test").experiment_id])[0]
    assert run.data.tags["gz.step"] == "acquire" and run.data.params["acquire.k"] == "3"
    assert run.data.metrics["n_ranked"] == N_REAL and run.data.metrics["n_skipped"] == 1
    assert run.data.metrics["selected_max_score"] >= run.data.metrics["selected_min_score"]
    client = MlflowClient()
    names = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"acquisition.parquet", "skipped.csv", "plots"} <= names
    assert client.list_artifacts(run.info.run_id, "plots")[0].path == "plots/top_galaxies.png"
    with pytest.raises(SystemExit) as stop:
        entry.main(["--model-uri", str(tiny[2]), "--input", str(folder / "nope")])
    assert stop.value.code == 2
    assert "nope: no such file or folder to rank" in capsys.readouterr().err
