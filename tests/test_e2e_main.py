"""`mlflow run .` (the main pipeline, debug preset) end to end, twice: the second run reuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gz_experiments.pipeline import STEPS

REPO = Path(__file__).resolve().parents[1]


def run_main(env: dict[str, str]) -> subprocess.CompletedProcess:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [mlflow, "run", ".", "-P", "preset=debug", "--env-manager", "local"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def main_runs(client, experiment):
    return client.search_runs(
        [experiment],
        "tags.`mlflow.project.entryPoint` = 'main'",
        order_by=["attributes.start_time ASC"],
    )


def children(client, experiment, parent_id):
    return client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_id}'")


@pytest.mark.e2e
def test_main_pipeline_runs_every_step_then_reuses_them(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    # Artifacts in tmp too (the default would be ./mlruns in the repo).
    experiment = client.create_experiment("e2e", artifact_location=str(tmp_path / "artifacts"))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": uri,
        "GZ_CACHE_DIR": str(tmp_path / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "CUDA_VISIBLE_DEVICES": "-1",
        "MLFLOW_EXPERIMENT_ID": experiment,
    }
    env.pop("MLFLOW_RUN_ID", None)
    first = run_main(env)
    for expected in ("finished", "Registered model:  models:/gz-decals/1", "mlflow ui", "accuracy"):
        assert expected in first.stdout, expected

    (parent,) = main_runs(client, experiment)
    assert parent.info.status == "FINISHED"
    steps = {
        r.data.tags["mlflow.project.entryPoint"]: r
        for r in children(client, experiment, parent.info.run_id)
    }
    assert sorted(steps) == sorted(STEPS)
    assert all(run.info.status == "FINISHED" for run in steps.values())
    evaluate = steps["evaluate"].data.metrics
    assert 0 <= evaluate["test/smooth-or-featured/accuracy"] <= 1
    assert evaluate["test/volunteer_floor_mae"] > 0 and "test/truth_mae_ratio" in evaluate
    predictions = first.stdout.split("Predictions:")[1].split()[0]
    assert Path(predictions).is_file()

    second = run_main(env)
    assert "reused" in second.stdout
    _, again = main_runs(client, experiment)
    assert again.info.status == "FINISHED"
    assert children(client, experiment, again.info.run_id) == []
    for step, run in steps.items():
        assert again.data.tags[f"gz.{step}_run_id"] == run.info.run_id
        assert again.data.tags[f"gz.{step}_reused"] == "True"
