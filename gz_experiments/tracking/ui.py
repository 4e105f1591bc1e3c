"""The MLflow UI on this project's tracking store, opened on the project's experiment.

The store is MLFLOW_TRACKING_URI when it names a database, else ./mlflow.db (where every step
logs by default). MLflow 3.17's UI picks its "GenAI" or "Model training" view from a setting of
its own (`workflowType`, remembered by the browser, GenAI by default) before it looks at an
experiment's `mlflow.experimentKind` tag, so the address we give names the view:
`/#/experiments/<id>/runs?workflowType=machine_learning` opens the experiment's runs table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

from gz_experiments.tracking.experiment import DEFAULT_EXPERIMENT

DEFAULT_STORE = "sqlite:///mlflow.db"
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
READY_TIMEOUT = 120.0  # seconds; the UI starts four workers, ~10-40 s on two busy cores


def store_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "") or DEFAULT_STORE
    if uri == DEFAULT_STORE:  # absolute, so the printed address works from any folder
        return f"sqlite:///{Path('mlflow.db').resolve()}"
    return uri


def experiment_url(base: str, store: str) -> str:
    """The experiment's runs in the Model training view, or the home page when the store has
    no such experiment yet."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).exists():
        return f"{base}/#/?{MODEL_TRAINING_VIEW}"  # asking would create an empty store
    experiment = MlflowClient(tracking_uri=store).get_experiment_by_name(name)
    if experiment is None:
        return f"{base}/#/?{MODEL_TRAINING_VIEW}"
    return f"{base}/#/experiments/{experiment.experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def start_ui(store: str, host: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
               "--host", host, "--port", str(port)]  # fmt: skip
    # Same process group as `gz ui`: Ctrl-C in the terminal reaches both.
    return subprocess.Popen(command)


def wait_until_ready(process: subprocess.Popen, base: str) -> bool:
    """True once `base`/health answers; False if the UI exited first (its own error shows)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the UI (its root process stops its workers), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
