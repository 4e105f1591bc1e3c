"""Shared fixtures: quiet TensorFlow/MLflow, an isolated tracking store, paths to shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip with the reason (never copied into the project)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-data sets live in ../shared/data beside the repo")
    return path


# mlflow.set_experiment writes MLFLOW_EXPERIMENT_ID into os.environ (for subprocesses to inherit):
# a test that sets an experiment in-process must not send later tests' processes to it.
MLFLOW_CHOICES = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")


@pytest.fixture(autouse=True)
def mlflow_choices_do_not_leak():
    saved = {name: os.environ.get(name) for name in MLFLOW_CHOICES}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def migrated_tracking_db(tmp_path_factory) -> Path:
    """An empty MLflow sqlite store, migrated once: each new store runs dozens of migrations."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking(tmp_path, monkeypatch, migrated_tracking_db):
    """A private sqlite tracking store + artifact root for one test."""
    import shutil

    import mlflow

    shutil.copyfile(migrated_tracking_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment("test", artifact_location=str(tmp_path / "artifacts"))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def write_png_bomb(path: Path, side: int = 13000) -> Path:
    """A ~20 KB PNG that claims side x side pixels (1-bit zeros compress ~1000:1): decoding it
    in full would take a gigabyte and many seconds."""
    from PIL import Image

    Image.new("1", (side, side)).save(path, optimize=True)
    return path
