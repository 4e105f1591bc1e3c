"""`mlflow run . -e tune` for real (debug preset: tiny images, small_cnn, 2 epochs), twice."""

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

REPO = Path(__file__).resolve().parents[1]
STATE = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAIL": "FAILED"}


def mlflow_run_tune(env: dict[str, str], *params: str) -> None:
    command = ["mlflow", "run", ".", "-e", "tune", "--env-manager", "local"]
    command += ["--experiment-name", "tune-e2e"]
    for param in ("preset=debug", *params):
        command += ["-P", param]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


@pytest.mark.e2e
def test_mlflow_run_tune_then_resume(tmp_path):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    # Artifacts under tmp_path, not ./mlruns in the repo.
    experiment_id = mlflow.create_experiment("tune-e2e", artifact_location=str(tmp_path / "art"))
    env = dict(os.environ)
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        GZ_CACHE_DIR=str(tmp_path / "cache"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="3",
        MLFLOW_DISABLE_TELEMETRY="true",
        CUDA_VISIBLE_DEVICES="-1",
    )
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    mlflow_run_tune(env, "n_trials=3", f"storage={storage}", "study_name=e2e")
    mlflow_run_tune(env, "n_trials=1", f"storage={storage}", "study_name=e2e")

    trials = optuna.load_study(study_name="e2e", storage=storage).get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]  # the second run resumed the study
    client = MlflowClient()
    parents = client.search_runs(
        [experiment_id], "tags.`gz.step` = 'tune'", order_by=["attributes.start_time ASC"]
    )
    assert len(parents) == 2
    for parent, numbers in zip(parents, ([0, 1, 2], [3]), strict=True):
        runs = client.search_runs(
            [experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        by_number = {int(r.data.tags["gz.trial_number"]): r for r in runs}
        assert sorted(by_number) == numbers
        for number, run in by_number.items():
            trial = trials[number]
            assert run.data.tags["gz.trial_state"] == STATE[trial.state.name]
            assert trial.user_attrs[RUN_ID_ATTR] == run.info.run_id
            assert "val_loss" in run.data.metrics  # per-epoch metrics from training
            assert any(k.startswith("val_loss/") for k in run.data.metrics)  # per question

    first = client.get_run(parents[0].info.run_id)
    assert first.data.tags["gz.study_name"] == "e2e"
    assert "best_value" in first.data.metrics
    plots = {a.path for a in client.list_artifacts(first.info.run_id, "study")}
    assert "study/optimization_history.png" in plots
