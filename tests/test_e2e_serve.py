"""End to end: register -> predict step -> load the champion -> a real `mlflow models serve`."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entry_points import predict as predict_entry
from entry_points import register as register_entry
from gz_experiments.schema import get_schema

from .conftest import REPO, shared_data
from .tiny_models import REAL_IMAGES, log_training_run, save_tiny_model, tiny_spec

NAME = "gz-e2e"
SCHEMA = get_schema("gzd5")
SERVE_TIMEOUT = 150  # seconds; the server imports TensorFlow and loads the model first


def check_fractions(df: pd.DataFrame) -> None:
    for q in SCHEMA.questions:
        sums = df[[f"{c}_fraction" for c in q.label_cols]].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    np.testing.assert_allclose(df["smooth-or-featured_p_asked"], 1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"mlflow models serve exited early: {process.stderr.read()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    raise AssertionError(f"no /health on port {port} after {SERVE_TIMEOUT} s")


def invoke(port: int, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture
def champion(tracking, tmp_path, capsys):
    """A tiny untrained model logged like a training run and registered with the entry point."""
    keras_file = save_tiny_model(tmp_path / "m.keras", tiny_spec())
    run_id = log_training_run(keras_file, tiny_spec(), 1.0)
    register_entry.main(["--experiment", "test", "--name", NAME, "--preset", "cpu"])
    printed = capsys.readouterr().out
    assert f"mlflow models serve -m models:/{NAME}@champion --env-manager local" in printed
    version = MlflowClient().get_model_version_by_alias(NAME, "champion")
    assert version.tags["gz.source_run_id"] == run_id
    return f"models:/{NAME}@champion"


@pytest.mark.e2e
def test_predict_step_and_pyfunc_on_all_real_images(champion, tmp_path):
    data = shared_data(REAL_IMAGES)
    catalog = pd.read_csv(data / "catalog.csv", dtype={"id_str": str})
    output = tmp_path / "out" / "predictions.csv"
    predict_entry.main(
        ["--model-uri", champion, "--input", str(data / "images"), "--output", str(output),
         "--n-samples", "3", "--preset", "cpu"]
    )  # fmt: skip
    written = pd.read_csv(output, dtype={"id_str": str})
    assert len(written) == len(catalog) == 470
    assert sorted(written["id_str"]) == sorted(catalog["id_str"])
    assert written.filter(like="_concentration_").shape[1] == 3 * SCHEMA.n_answers
    check_fractions(written)
    run = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("test").experiment_id],
        filter_string="tags.`gz.step` = 'predict'",
    )[0]
    assert run.data.metrics["n_predicted"] == 470 and run.data.metrics["n_skipped"] == 0
    logged = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path))
    assert len(pd.read_csv(Path(logged) / "predictions.csv")) == 470
    assert pd.read_csv(Path(logged) / "skipped.csv").empty

    frame = pd.DataFrame(
        {"file_loc": [str(data / f) for f in catalog["file_loc"]], "id_str": catalog["id_str"]}
    )
    served = mlflow.pyfunc.load_model(champion).predict(frame, params={"n_samples": 2})
    assert served.shape == (470, 1 + 2 * SCHEMA.n_answers + SCHEMA.n_questions)
    assert served["id_str"].tolist() == catalog["id_str"].tolist()
    check_fractions(served)


@pytest.mark.e2e
def test_models_serve_answers_a_base64_png(champion, tracking):
    png = sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[0]
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking, TF_CPP_MIN_LOG_LEVEL="3",
               MLFLOW_DISABLE_TELEMETRY="true", CUDA_VISIBLE_DEVICES="-1")  # fmt: skip
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    command = ["mlflow", "models", "serve", "-m", champion, "--env-manager", "local",
               "--host", "127.0.0.1", "-p", str(port)]  # fmt: skip
    # Own session: the server's workers are its children, stopped with it by its process group.
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        wait_for_health(port, server)
        image = base64.b64encode(png.read_bytes()).decode()
        body = {"dataframe_split": {"columns": ["image", "id_str"], "data": [[image, png.stem]]}}
        answer = pd.DataFrame(invoke(port, body)["predictions"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert len(answer) == 1 and answer["id_str"][0] == png.stem
    check_fractions(answer)
