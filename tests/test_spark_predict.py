"""Batch prediction on a real local[2] Spark (started here): the registered model as a Spark UDF
gives the local predict's table on the real gzd5_real_128 images, and counts bad images."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entry_points import predict as predict_entry
from gz_experiments.cli import parse_config
from gz_experiments.config import PredictConfig, Sampling

from .conftest import shared_data
from .spark import local_spark
from .tiny_models import (
    REAL_IMAGES,
    linked_folder,
    real_images,
    register_tiny_champion,
)

NAME = "gz-spark"


@pytest.fixture(scope="module")
def spark():
    with local_spark() as session:
        yield session


@pytest.fixture
def champion(tracking, tmp_path):
    return register_tiny_champion(tmp_path, NAME)


def real_catalog(folder):
    """The real catalog, file_loc relative to `folder` (images/ links to the real ones), with a
    corrupt and a missing image in the middle."""
    data = shared_data(REAL_IMAGES)
    (folder / "images").symlink_to(data / "images")
    rows = pd.read_csv(data / "catalog.csv", dtype={"id_str": str})[["id_str", "file_loc"]]
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but not a PNG after all")
    bad = pd.DataFrame({"id_str": ["corrupt", "gone"], "file_loc": ["corrupt.png", "gone.png"]})
    catalog = pd.concat([rows[:100], bad, rows[100:]], ignore_index=True)
    catalog.to_csv(folder / "catalog.csv", index=False)
    return folder / "catalog.csv", len(rows)


def step(argv: list[str]):
    return predict_entry.run(parse_config(PredictConfig, argv, None))


@pytest.mark.e2e
def test_spark_predicts_the_local_table_and_counts_bad_images(spark, champion, tmp_path):
    catalog, n_real = real_catalog(tmp_path)
    common = ["--model-uri", champion, "--input", str(catalog), "--n-samples", "3",
              "--seed", "7", "--preset", "cpu"]  # fmt: skip
    on_spark = step([*common, "--engine", "spark", "--output", str(tmp_path / "spark")])
    spark_run = mlflow.last_active_run().info.run_id
    local = step([*common, "--output", str(tmp_path / "local.parquet")])

    got, expected = pd.read_parquet(tmp_path / "spark"), pd.read_parquet(tmp_path / "local.parquet")
    assert list(got.columns) == list(expected.columns)  # concentrations and acquisition too
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()
    assert got["id_str"].tolist() == expected["id_str"].tolist()  # catalog order kept
    assert len(got) == n_real == 470
    numbers = got.columns[1:]
    np.testing.assert_allclose(got[numbers], expected[numbers], rtol=0, atol=1e-5)

    for result in (on_spark, local):
        report = result.report
        assert (report.n_predicted, len(report.skipped), report.n_inputs) == (470, 2, 472)
    assert on_spark.report.skipped == local.report.skipped  # same ids, paths and reasons
    assert [s[0] for s in on_spark.report.skipped] == ["corrupt", "gone"]

    run = MlflowClient().get_run(spark_run)
    assert run.data.params["predict.engine"] == "spark"
    assert (run.data.metrics["n_predicted"], run.data.metrics["n_skipped"]) == (470, 2)
    logged = [f.path for f in MlflowClient().list_artifacts(spark_run, "predictions")]
    assert any(path.endswith(".parquet") for path in logged), logged
    skipped = pd.read_csv(MlflowClient().download_artifacts(spark_run, "skipped.csv", tmp_path))
    assert skipped["id_str"].tolist() == ["corrupt", "gone"]
    assert "not a PNG or JPEG" in skipped["reason"][0] and "not found" in skipped["reason"][1]


@pytest.mark.e2e
def test_a_folder_is_read_by_spark_with_the_local_ids(spark, champion, tmp_path):
    from gz_experiments.prediction.spark import predict_spark
    from gz_experiments.prediction.stream import predict
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.spark import spark_model

    pngs = real_images(12)
    folder = linked_folder(tmp_path / "folder", pngs[:11])
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.png").symlink_to(pngs[11])
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / ".DS_Store").write_bytes(b"hidden files are ignored")
    sampling = Sampling(n_samples=2, batch_size=5, seed=3)

    model, spec = spark_model(champion, tmp_path / "copy")
    report = predict_spark(spark, model, spec, f"file://{folder}", tmp_path / "out", sampling)
    expected = predict(*load_galaxy_model(champion), folder, sampling, n_volunteers=10)

    got = pd.read_parquet(tmp_path / "out").set_index("id_str").loc[expected["id_str"]]
    assert "sub/extra" in got.index and len(got) == 12 == report.n_predicted
    np.testing.assert_allclose(got, expected.set_index("id_str"), rtol=0, atol=1e-5)
    assert report.skipped == [("broken", str(folder / "broken.png"), report.skipped[0][2])]
    assert "PNG or JPEG" in report.skipped[0][2]


def write_catalog(path, text: str):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id_str,path\na,a.png\n", r"missing required column\(s\) \['file_loc'\]"),
        ("id_str,file_loc\na,a.png\n,b.png\nc,c.png\n", r"'id_str' is empty in 1 row\(s\): 2;"),
        (
            "id_str,file_loc\na,a.png\nb,b.png\na,c.png\n",
            r"duplicate ids \['a'\] in 2 row\(s\): 1, 3",
        ),
        ("id_str,file_loc\na,a.png\nb,\n", r"'file_loc' is empty in 1 row\(s\): 2"),
        ("id_str,file_loc\n", "the catalog has no rows"),
    ],
)
def test_a_bad_catalog_is_refused_naming_its_rows(spark, tmp_path, text, message):
    from gz_experiments.errors import UserError
    from gz_experiments.prediction.spark_inputs import input_rows

    with pytest.raises(UserError, match=message):
        input_rows(spark, str(write_catalog(tmp_path / "catalog.csv", text)))


def test_a_folder_with_other_files_or_clashing_ids_is_refused(spark, tmp_path):
    from gz_experiments.errors import UserError
    from gz_experiments.prediction.spark_inputs import input_rows

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "g.png").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=r"1 file\(s\) are not .* images, e.g. notes.txt"):
        input_rows(spark, str(tmp_path / "a"))
    (tmp_path / "a" / "notes.txt").unlink()
    (tmp_path / "a" / "g.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match=r"images share an id \(g\)"):
        input_rows(spark, str(tmp_path / "a"))
