"""Several worker processes sharing one study on a real PostgreSQL server (started here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from gz_experiments.tuning.search import RUN_ID_ATTR

from .postgres import create_database, running_postgres

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def postgres_url():
    with running_postgres() as url:
        yield url


def worker_env(tracking_uri: str, experiment_id: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_RUN_ID", None)
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_EXPERIMENT_ID=experiment_id,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="3",
        MLFLOW_DISABLE_TELEMETRY="true",
        CUDA_VISIBLE_DEVICES="-1",
    )
    return env


@pytest.mark.e2e
def test_workers_share_one_study_on_postgres(postgres_url, tmp_path, monkeypatch):
    # MLflow on PostgreSQL too: the multi-machine setup, and no SQLite lock between writers.
    tracking_uri = create_database(postgres_url, "mlflow")  # plain postgresql://: psycopg 3
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment("tune", artifact_location=str(tmp_path / "art"))
    storage = postgres_url.replace("postgres@", "postgres:not-logged@")  # trust auth ignores it

    command = [sys.executable, "-m", "tests.fake_tune_worker", "--preset", "debug"]
    command += ["--storage", storage, "--study-name", "shared", "--n-trials", "3"]
    env = worker_env(tracking_uri, experiment_id)
    # Two invocations at once, one of them starting two worker processes itself.
    launches = [command + ["--n-workers", "2"], command]
    processes = [
        subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for c in launches
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.is_finished() and t.state.name != "FAIL" for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6

    client = MlflowClient()
    parents = client.search_runs([experiment_id], filter_string="tags.`gz.step` = 'tune'")
    assert len(parents) == 2
    assert all("not-logged" not in p.data.tags["gz.storage"] for p in parents)
    assert all("not-logged" not in p.data.params["tune.storage"] for p in parents)
    children = client.search_runs([experiment_id], filter_string="tags.`gz.trial_number` != ''")
    trial_runs = sorted(t.user_attrs[RUN_ID_ATTR] for t in trials)
    assert sorted(r.info.run_id for r in children) == trial_runs
    by_parent = {p.info.run_id: 0 for p in parents}
    for child in children:
        by_parent[child.data.tags["mlflow.parentRunId"]] += 1
    assert sorted(by_parent.values()) == [3, 3]
