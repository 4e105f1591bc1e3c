"""`mlflow run . -e train` against a real `mlflow server`: logging, SIGKILL + resume, dead server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
EXPERIMENT = "e2e-train"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url}/health did not answer in {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process we started (the server's root stops its workers), then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    command = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def env(server, tmp_path_factory) -> dict[str, str]:
    """Environment of the `mlflow run` subprocesses; the default dataset cached once per module."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": server,
        "GZ_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "CUDA_VISIBLE_DEVICES": "-1",
    }


@pytest.fixture
def client(server, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    return MlflowClient(tracking_uri=server)


def mlflow_run(*params: str) -> list[str]:
    command = [str(BIN / "mlflow"), "run", ".", "-e", "train", "--env-manager", "local"]
    command += ["--experiment-name", EXPERIMENT]
    for param in ("preset=debug", *params):
        command += ["-P", param]
    return command


def runs(client):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_train_logs_metrics_checkpoints_and_model(env, client):
    out = subprocess.run(
        mlflow_run(), cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = runs(client)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    epochs = int(run.data.metrics["epochs_run"])
    assert epochs == 2  # debug preset
    questions = [f"val_loss/{q}" for q in ("smooth-or-featured", "bar", "merging")]
    for key in ["train_loss", "val_loss", *questions, "val_mae/bar", "images_per_second"]:
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == [1, 2], key
    assert run.data.metrics["best_val_loss"] > 0 and run.data.metrics["baseline_val_loss"] > 0
    assert run.data.tags["gz.schema"] == "gzd5" and run.data.tags["gz.preset"] == "debug"
    assert run.data.params["preset"] == "debug" and run.data.params["train.preset"] == "debug"
    checkpoints = {f.path for f in client.list_artifacts(run_id, "checkpoints")}
    assert checkpoints == {f"checkpoints/{n}" for n in ("best.keras", "last.keras", "state.json")}
    (model,) = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    assert model.name == "model"
    assert "model.keras" in {
        Path(f.path).name for f in client.list_logged_model_artifacts(model.model_id, "artifacts")
    }


def wait_for_first_checkpoint(client, process: subprocess.Popen, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for run in runs(client):
            names = {f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")}
            if "checkpoints/state.json" in names and run.data.params.get("epochs") == "3":
                return run.info.run_id
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint logged (exit code {process.poll()})")


def test_run_killed_mid_epoch_resumes_to_the_same_epoch_count(env, client):
    # Three long epochs (150 steps each) with patience above the epoch count: an uninterrupted
    # run always trains exactly 3 epochs.
    params = ("epochs=3", "patience=10", "steps_per_epoch=150")
    process = subprocess.Popen(
        mlflow_run(*params),
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = wait_for_first_checkpoint(client, process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the `mlflow run` process group we started
        process.wait()
    killed = client.get_run(run_id)
    assert killed.info.status == "RUNNING"  # killed before it could finish
    epochs_before = len(client.get_metric_history(run_id, "val_loss"))
    assert 1 <= epochs_before < 3

    resume = mlflow_run(f"resume_run_id={run_id}")
    out = subprocess.run(resume, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.metrics["epochs_run"] == 3
    steps = {m.step for m in client.get_metric_history(run_id, "val_loss")}
    assert steps == {1, 2, 3}
    launchers = [r for r in runs(client) if r.data.tags.get("gz.resumed_run_id") == run_id]
    assert len(launchers) == 1


def test_unreachable_server_fails_before_any_data_work(env, tmp_path):
    dead = {**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    dead["GZ_CACHE_DIR"] = str(tmp_path / "cache")
    command = [sys.executable, "-m", "entry_points.train", "--preset", "debug"]
    out = subprocess.run(command, cwd=REPO, env=dead, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "cannot reach the MLflow tracking server" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "cache").exists()
