"""Worker processes die with their parent, and a lost tune worker costs only its own trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import psutil
import pytest
from PIL import Image

from .conftest import REPO

ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "CUDA_VISIBLE_DEVICES": "-1",
}


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **ENV, **extra}
    env.pop("MLFLOW_RUN_ID", None)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.e2e
def test_killing_shard_kills_its_decode_workers(tmp_path):
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1500):  # above shards.writer.PARALLEL_MIN: decoded by worker processes
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
            tmp_path / "img" / f"{i}.png"
        )
        rows.append({"id_str": str(i), "file_loc": f"img/{i}.png", "gz1-class_elliptical": 1,
                     "gz1-class_spiral": 0, "gz1-class_edge-on": 0, "gz1-class_merger": 0,
                     "gz1-class_dont-know": 0})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "catalog.csv", index=False)
    command = [sys.executable, "-m", "entry_points.shard", "--preset", "paper", "--schema", "gz1",
               "--catalog", str(tmp_path / "catalog.csv"), "--shard-dir", str(tmp_path / "shards"),
               "--img-size", "256", "--n-workers", "2"]  # fmt: skip
    shard = subprocess.Popen(command, cwd=REPO, env=env_for(tmp_path), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    parent = psutil.Process(shard.pid)
    workers = wait_for(lambda: [c for c in parent.children() if c.is_running()][:2]
                       if len(parent.children()) >= 2 else None, 90, "two decode workers")  # fmt: skip
    shard.send_signal(signal.SIGKILL)
    shard.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"decode workers outlived their killed parent: {alive}"


@pytest.mark.e2e
def test_a_killed_tune_worker_fails_its_trial_and_the_others_go_on(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    command = [sys.executable, "-m", "tests.fake_tune_worker", "--preset", "debug", "--storage",
               storage, "--n-trials", "4", "--n-workers", "2", "--pruner", "none"]  # fmt: skip
    tune = subprocess.Popen(command, cwd=REPO, env=env_for(tmp_path, FAKE_EPOCH_SECONDS="2"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def running_trial():
        try:
            study = optuna.load_study(study_name="gz-tune", storage=storage)
        except KeyError:
            return None
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        return next((t for t in running if "worker_pid" in t.user_attrs), None)

    victim = wait_for(running_trial, 90, "a running trial")
    os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
    output = tune.communicate(timeout=180)[0]
    assert tune.returncode == 0, output[-3000:]
    assert "worker lost" in output and "Traceback" not in output
    assert "study gz-tune: best trial" in output  # the summary is still there
    trials = optuna.load_study(study_name="gz-tune", storage=storage).get_trials()
    lost = [t for t in trials if t.number == victim.number][0]
    assert lost.state.name == "FAIL" and "exited with code -9" in lost.user_attrs["fail_reason"]
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 1
    assert all(t.state.is_finished() for t in trials)


@pytest.mark.e2e
def test_mlflow_run_against_a_dead_server_fails_fast_with_the_documented_setting(tmp_path):
    """MLflow itself retries a dead tracking server for minutes before our command starts;
    MLFLOW_HTTP_REQUEST_MAX_RETRIES (set by the Makefile, documented in the README) bounds it."""
    env = env_for(tmp_path, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
    start = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlflow"), "run", ".", "-e", "simulate", "-P",
         "preset=debug", "--env-manager", "local"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode != 0
    assert time.monotonic() - start < 60
