"""predict --engine spark on a real Spark standalone cluster (a master and a worker process on
loopback, started here): the executors find the project's Python by themselves and give the
local engine's numbers; a Python they cannot use is refused at once in one line."""

from __future__ import annotations

import venv

import pandas as pd
import pytest

from gz_experiments.errors import UserError

from .conftest import shared_data
from .spark import standalone_cluster
from .test_spark_predict import NAME, step
from .tiny_models import REAL_IMAGES, register_tiny_champion

N_GALAXIES = 60  # one executor core: enough for several Arrow batches, quick on 2 shared cores


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as master:
        yield master


@pytest.fixture
def champion(tracking, tmp_path):
    return register_tiny_champion(tmp_path, NAME)


@pytest.fixture
def catalog(tmp_path):
    data = shared_data(REAL_IMAGES)
    rows = pd.read_csv(data / "catalog.csv", dtype={"id_str": str})[["id_str", "file_loc"]]
    rows = rows[:N_GALAXIES].assign(file_loc=[str(data / f) for f in rows["file_loc"][:N_GALAXIES]])
    rows.to_csv(tmp_path / "catalog.csv", index=False)
    return tmp_path / "catalog.csv"


@pytest.mark.e2e
def test_a_standalone_cluster_predicts_the_local_table(cluster, champion, catalog, tmp_path,
                                                       monkeypatch):  # fmt: skip
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)  # the trap: executors would run python3
    common = ["--model-uri", champion, "--input", str(catalog), "--n-samples", "3", "--seed", "7",
              "--batch-size", "16", "--preset", "cpu"]  # fmt: skip
    on_cluster = step([*common, "--engine", "spark", "--spark-master", cluster,
                       "--output", str(tmp_path / "spark")])  # fmt: skip
    local = step([*common, "--output", str(tmp_path / "local.parquet")])

    got, expected = pd.read_parquet(tmp_path / "spark"), pd.read_parquet(tmp_path / "local.parquet")
    assert on_cluster.report.n_predicted == local.report.n_predicted == N_GALAXIES
    assert got["id_str"].tolist() == expected["id_str"].tolist()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_an_executor_python_without_the_package_is_refused_in_one_line(
    cluster, champion, catalog, tmp_path, monkeypatch
):
    bare = tmp_path / "bare"  # a real Python of the same version, without this project
    venv.create(bare, with_pip=False)
    monkeypatch.setenv("PYSPARK_PYTHON", str(bare / "bin" / "python"))
    with pytest.raises(UserError) as error:
        step(["--model-uri", champion, "--input", str(catalog), "--engine", "spark",
              "--spark-master", cluster, "--output", str(tmp_path / "spark")])  # fmt: skip
    message = str(error.value)
    assert "\n" not in message
    assert f"Python ({bare / 'bin' / 'python'}) has no pandas, pyarrow" in message
    assert "set PYSPARK_PYTHON" in message
    assert not (tmp_path / "spark").exists()  # refused before any work
