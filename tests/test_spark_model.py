"""What batch prediction on Spark needs from the served model, and what engine=spark refuses,
without starting Spark: on_unreadable="skip", concentrations, the per-process model cache, old
signatures upgraded in the local copy, and the up-front checks."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from gz_experiments.config import ConfigError, PredictConfig
from gz_experiments.errors import UserError
from gz_experiments.prediction.run import check_inputs
from gz_experiments.prediction.tables import output_columns
from gz_experiments.schema import get_schema
from gz_experiments.tracking.spark import MLMODEL, spark_model

from .conftest import shared_data
from .tiny_models import REAL_IMAGES, log_training_run, save_tiny_model, tiny_spec

SCHEMA = get_schema("gzd5")


@pytest.fixture
def model_folder(tracking, tmp_path):
    """A logged tiny model, downloaded as a local MLflow model folder."""
    run_id = log_training_run(save_tiny_model(tmp_path / "m.keras", tiny_spec()), tiny_spec(), 1.0)
    return mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path))


def frame_with_bad_rows(tmp_path) -> pd.DataFrame:
    pngs = sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[:4]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths = [str(pngs[0]), str(tmp_path / "bad.png"), str(pngs[1]), None, str(pngs[2])]
    return pd.DataFrame({"file_loc": paths, "id_str": ["a", "bad", "b", "none", "c"]})


def test_skip_keeps_every_row_in_order_with_its_reason_and_the_samples(model_folder, tmp_path):
    model = mlflow.pyfunc.load_model(model_folder)
    frame = frame_with_bad_rows(tmp_path)
    params = {"n_samples": 2, "seed": 5}
    out = model.predict(frame, params={**params, "on_unreadable": "skip", "concentrations": True})
    assert out["id_str"].tolist() == ["a", "bad", "b", "none", "c"]
    assert list(out.columns) == [
        *output_columns(SCHEMA, 2, acquisition=True), "skipped_reason"
    ]  # fmt: skip
    reasons = out["skipped_reason"].tolist()
    assert reasons[0] == reasons[2] == reasons[4] == ""
    assert "PNG or JPEG" in reasons[1] and "neither file_loc nor image" in reasons[3]
    numbers = out.columns[1:-1]
    assert out.loc[[1, 3], numbers].isna().all().all()
    # the readable rows are exactly what a request without the bad rows returns
    served = model.predict(frame.iloc[[0, 2, 4]], params=params)
    assert "skipped_reason" not in served.columns
    np.testing.assert_array_equal(out.loc[[0, 2, 4], served.columns[1:]], served.iloc[:, 1:])


def test_raise_stays_the_served_default_and_skip_needs_unique_ids(model_folder, tmp_path):
    model = mlflow.pyfunc.load_model(model_folder)
    frame = frame_with_bad_rows(tmp_path)
    with pytest.raises(MlflowException, match=r"2 image\(s\) could not be read"):
        model.predict(frame)
    twice = frame.assign(id_str=["a", "bad", "a", "none", "c"])
    with pytest.raises(MlflowException, match="give every row its own id_str"):
        model.predict(twice, params={"on_unreadable": "skip"})
    with pytest.raises(MlflowException, match="on_unreadable='drop' is not one of raise, skip"):
        model.predict(frame, params={"on_unreadable": "drop"})


def test_the_keras_model_is_loaded_once_per_process(model_folder):
    first = mlflow.pyfunc.load_model(model_folder).unwrap_python_model()
    again = mlflow.pyfunc.load_model(model_folder).unwrap_python_model()
    assert again.keras_model is first.keras_model


def test_an_old_signature_is_upgraded_in_the_copy_only(model_folder, tmp_path):
    old = Model.load(f"{model_folder}/{MLMODEL}")
    old.signature.params.params[:] = old.signature.params.params[:4]  # before on_unreadable
    old.save(f"{model_folder}/{MLMODEL}")
    model, spec = spark_model(model_folder, tmp_path / "copy")
    assert model.upgraded and spec.schema.name == "gzd5"
    names = [p.name for p in Model.load(model.path / MLMODEL).signature.params.params]
    assert {"on_unreadable", "concentrations"} <= set(names)
    original = Model.load(f"{model_folder}/{MLMODEL}").signature.params.params
    assert "on_unreadable" not in [p.name for p in original]  # the user's folder is untouched
    out = mlflow.pyfunc.load_model(str(model.path)).predict(
        frame_with_bad_rows(tmp_path), params={"on_unreadable": "skip"}
    )
    assert (out["skipped_reason"] != "").sum() == 2
    current, _ = spark_model(str(model.path), tmp_path / "again")
    assert not current.upgraded


def test_a_folder_that_is_not_a_galaxy_model_is_refused(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / MLMODEL).write_text(json.dumps({}))
    with pytest.raises(UserError, match="not logged by"):
        spark_model(str(tmp_path / "model"), tmp_path / "copy")
    with pytest.raises(UserError, match="not a bare .keras file"):
        spark_model(str(tmp_path / "m.keras"), tmp_path / "copy")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mc_mode": "full"}, "mc_mode=head only"),
        ({"output": "out.csv"}, "a folder of parquet files"),
        ({"output_format": "csv"}, "a folder of parquet files"),
    ],
)
def test_spark_config_refuses_what_it_cannot_do(changes, message):
    with pytest.raises(ConfigError, match=message):
        PredictConfig.resolve("cpu", engine="spark", **changes)
    PredictConfig.resolve("cpu", **changes)  # fine locally


def test_spark_inputs_are_checked_before_anything_starts(tmp_path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("id_str,file_loc\na,a.png\n")
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text("{}")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "_SUCCESS").write_text("")

    def check(**values):
        check_inputs(PredictConfig.resolve("cpu", model_uri="m", engine="spark", **values))

    check(input=str(catalog), output=str(earlier))  # an earlier prediction may be replaced
    check(input="s3a://bucket/images/")  # a folder anywhere Spark reads
    cases = [
        ({"input": str(shards)}, "a shard folder"),
        ({"input": str(tmp_path / "nope")}, "no such file or folder"),
        ({"input": "s3a://bucket/catalog.csv"}, "reads catalogs from a local or shared path"),
        ({"input": str(catalog), "output": str(busy)}, "not empty and not an earlier"),
        ({"input": str(catalog), "output": "s3a://bucket/out"}, "a folder the driver sees"),
        ({"input": str(catalog), "n_volunteers": 20}, "served model's 10 volunteers"),
    ]
    for values, message in cases:
        with pytest.raises(UserError, match=message):
            check(**values)
