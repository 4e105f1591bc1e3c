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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entry_points import predict as predict_entry
from entry_points import register as register_entry
from gz_experiments.prediction.inputs import REFUSED_PATH
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
    # id, fraction + spread per answer, p_asked per question, acquisition: 2 per question + 1
    assert served.shape == (470, 1 + 2 * SCHEMA.n_answers + 3 * SCHEMA.n_questions + 1)
    assert served["id_str"].tolist() == catalog["id_str"].tolist()
    check_fractions(served)


def post(port: int, body: dict, timeout: float = 60) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of one /invocations request, errors included."""
    status, text = post_raw(port, json.dumps(body).encode(), timeout)
    return status, json.loads(text or b"{}")


def post_raw(port: int, data: bytes, timeout: float = 60) -> tuple[int, bytes]:
    """(HTTP status, body) of one /invocations request of these JSON bytes, errors included."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextmanager
def served(champion: str, tracking: str, **extra_env: str):
    """A real `mlflow models serve` on a free loopback port; stopped (whole group) on exit."""
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking, TF_CPP_MIN_LOG_LEVEL="3",
               MLFLOW_DISABLE_TELEMETRY="true", CUDA_VISIBLE_DEVICES="-1", **extra_env)  # fmt: skip
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    command = ["mlflow", "models", "serve", "-m", champion, "--env-manager", "local",
               "--host", "127.0.0.1", "-p", str(port)]  # fmt: skip
    # Own session: the server's workers are its children, stopped with it by its process group.
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        wait_for_health(port, server)
        yield port, server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def frame_body(columns: list[str], rows: list[list], **params) -> dict:
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    if params:
        body["params"] = params
    return body


def no_trace(answer: dict) -> None:
    text = json.dumps(answer)
    assert "stack_trace" not in answer and "Traceback" not in text and ".py" not in text, text


@pytest.mark.e2e
def test_models_serve_answers_a_base64_png_and_reads_no_file_by_default(champion, tracking):
    png = sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[0]
    with served(champion, tracking) as (port, _):
        image = base64.b64encode(png.read_bytes()).decode()
        answer = pd.DataFrame(
            invoke(port, frame_body(["image", "id_str"], [[image, png.stem]]))["predictions"]
        )
        status, refused = post(port, frame_body(["file_loc"], [[str(png)]]))
    assert len(answer) == 1 and answer["id_str"][0] == png.stem
    check_fractions(answer)
    assert status == 400 and REFUSED_PATH in refused["message"]
    no_trace(refused)


def rss_of_tree(process: subprocess.Popen) -> int:
    import psutil

    root = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


@pytest.mark.e2e
def test_served_model_refuses_hostile_requests(champion, tracking, tmp_path):
    """Files outside the operator's folder, probes for which files exist, decompression bombs,
    oversized requests and out-of-range parameters: each a 400 with one line, no stack trace."""
    from .conftest import write_png_bomb

    png = sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[0]
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "g.png").write_bytes(png.read_bytes())
    (tmp_path / "secret.png").write_bytes(png.read_bytes())
    bomb = base64.b64encode(write_png_bomb(tmp_path / "bomb.png").read_bytes()).decode()
    image = base64.b64encode(png.read_bytes()).decode()
    limits = {"GZ_SERVE_ALLOWED_DIRS": str(allowed), "GZ_SERVE_MAX_ROWS": "8",
              "GZ_SERVE_MAX_REQUEST_BYTES": "150000"}  # fmt: skip
    with served(champion, tracking, **limits) as (port, server):
        ok, inside = post(port, frame_body(["file_loc", "id_str"], [[str(allowed / "g.png"), "a"]]))
        probes = {
            path: post(port, frame_body(["file_loc"], [[path]]))
            for path in (str(tmp_path / "secret.png"), str(allowed / ".." / "secret.png"),
                         "/etc/shadow", "/no/such/file.png", "/etc/hostname")
        }  # fmt: skip
        before = rss_of_tree(server)
        start = time.monotonic()
        with ThreadPoolExecutor(3) as pool:  # three at once, six bombs each
            bombs = list(
                pool.map(lambda _: post(port, frame_body(["image"], [[bomb]] * 6)), range(3))
            )
        bomb_seconds = time.monotonic() - start
        after = rss_of_tree(server)
        too_many = post(port, frame_body(["image"], [[image]] * 9))
        too_big = post(port, frame_body(["image"], [[image]] * 8))
        params = [post(port, frame_body(["image"], [[image]], **p))
                  for p in ({"n_samples": 100000}, {"batch_size": 0}, {"batch_size": -1},
                            {"mc_mode": "both"})]  # fmt: skip
        still_ok, _ = post(port, frame_body(["image"], [[image]]))
    assert ok == 200 and inside["predictions"][0]["id_str"] == "a"
    messages = set()
    for path, (status, answer) in probes.items():
        assert status == 400, path
        no_trace(answer)
        messages.add(answer["message"].split("Error: ", 1)[-1].replace(path, "<path>"))
    assert len(messages) == 1, messages  # nothing tells an existing file from a missing one
    for status, answer in bombs:
        assert status == 400 and "169,000,000 pixels, more than the limit" in answer["message"]
        no_trace(answer)
    assert bomb_seconds < 20 and after - before < 300e6, (bomb_seconds, after - before)
    assert too_many[0] == 400 and "GZ_SERVE_MAX_ROWS" in too_many[1]["message"]
    assert too_big[0] == 400 and "GZ_SERVE_MAX_REQUEST_BYTES" in too_big[1]["message"]
    expected = ("n_samples=100000 must be <= 100", "batch_size=0 must be >= 1",
                "batch_size=-1 must be >= 1", "mc_mode='both' is not one of head, full")  # fmt: skip
    for (status, answer), text in zip(params, expected, strict=True):
        assert status == 400 and text in answer["message"], answer
        no_trace(answer)
    assert still_ok == 200


@pytest.mark.e2e
def test_models_serve_answers_base64_fits_and_refuses_broken_fits(tracking, tmp_path):
    """FITS cutouts as base64 (plain, gzipped, tile-compressed) through a real server; a broken
    FITS is a 400 naming its reason. The model's spec carries the FITS settings of its shards."""
    import dataclasses

    from gz_experiments.images.fits import PRESETS

    from .fits_files import simulated_flux, write_broken, write_layout

    spec = dataclasses.replace(tiny_spec(), fits=PRESETS["simulator"])
    run_id = log_training_run(save_tiny_model(tmp_path / "m.keras", spec), spec, 1.0)
    flux = simulated_flux(3)
    files = [write_layout(tmp_path / f"g{i}", f, layout)
             for i, (f, layout) in enumerate(zip(flux, ("cube", "gzipped", "tile_compressed"),
                                                 strict=True))]  # fmt: skip
    images = [[base64.b64encode(f.read_bytes()).decode(), f"g{i}"] for i, f in enumerate(files)]
    broken = base64.b64encode(write_broken(tmp_path, "truncated").read_bytes()).decode()
    with served(f"runs:/{run_id}/model", tracking) as (port, _):
        answer = pd.DataFrame(invoke(port, frame_body(["image", "id_str"], images))["predictions"])
        status, refused = post(port, frame_body(["image", "id_str"], [images[0], [broken, "b"]]))
    assert answer["id_str"].tolist() == ["g0", "g1", "g2"]
    check_fractions(answer)
    assert status == 400 and "truncated file" in refused["message"], refused
    no_trace(refused)
