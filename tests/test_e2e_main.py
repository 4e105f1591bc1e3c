"""`mlflow run .` (the main pipeline, debug preset) end to end, as `make demo` runs it: the
steps, their reuse on a second run, what the MLflow UI says about them, and the UI itself in a
real headless browser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gz_experiments.pipeline import STEPS
from gz_experiments.tracking.experiment import (
    DEFAULT_EXPERIMENT,
    KIND_TAG,
    MODEL_TRAINING,
    NOTE_TAG,
    PURPOSE,
)

from .browser import headless_chromium, wait_for_element, wait_for_text
from .test_e2e_train import free_port, wait_for_health

REPO = Path(__file__).resolve().parents[1]
RESULT = "**Result:**"
PURPOSE_START = {step: PURPOSE[step][0][:20] for step in STEPS}
SCREENSHOTS = os.environ.get("GZ_SCREENSHOTS_DIR")  # docs: keep the browser's screenshots here


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


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `mlflow run .` into the galaxy-zoo experiment by name, as `make demo` does."""
    from mlflow.tracking import MlflowClient

    tmp_path = tmp_path_factory.mktemp("demo")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    # Created here only to keep artifacts in tmp (the default would be ./mlartifacts).
    experiment = client.create_experiment(
        DEFAULT_EXPERIMENT, artifact_location=str(tmp_path / "artifacts")
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": uri,
        "GZ_CACHE_DIR": str(tmp_path / "cache"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "CUDA_VISIBLE_DEVICES": "-1",
        "MLFLOW_EXPERIMENT_NAME": DEFAULT_EXPERIMENT,
    }
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(name, None)
    first = run_main(env)
    return {"client": client, "experiment": experiment, "env": env, "stdout": first.stdout}


@pytest.mark.e2e
def test_main_pipeline_runs_every_step_then_reuses_them(demo):
    client, experiment = demo["client"], demo["experiment"]
    for expected in ("finished", "Registered model:  models:/gz-decals/1", "gz ui", "accuracy"):
        assert expected in demo["stdout"], expected

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
    predictions = demo["stdout"].split("Predictions:")[1].split()[0]
    assert Path(predictions).is_file()

    second = run_main(demo["env"])
    assert "reused" in second.stdout
    _, again = main_runs(client, experiment)
    assert again.info.status == "FINISHED"
    assert children(client, experiment, again.info.run_id) == []
    for step, run in steps.items():
        assert again.data.tags[f"gz.{step}_run_id"] == run.info.run_id
        assert again.data.tags[f"gz.{step}_reused"] == "True"


@pytest.mark.e2e
def test_experiment_runs_and_models_describe_themselves(demo):
    client, experiment = demo["client"], demo["experiment"]
    tags = client.get_experiment(experiment).tags
    assert tags[KIND_TAG] == MODEL_TRAINING and "pipeline" in tags[NOTE_TAG]
    parent = main_runs(client, experiment)[0]
    story = parent.data.tags[NOTE_TAG]
    assert story.startswith("The whole pipeline") and RESULT in story
    assert "mean accuracy" in story.split(RESULT)[1]
    for run in children(client, experiment, parent.info.run_id):
        note = run.data.tags[NOTE_TAG]
        assert note.startswith(PURPOSE_START[run.info.run_name]) and RESULT in note, note
    train = client.search_runs([experiment], "tags.`gz.step` = 'train'")[0]
    assert f"{train.data.metrics['best_val_loss']:.4f}" in train.data.tags[NOTE_TAG]
    version = client.get_model_version("gz-decals", "1")
    assert train.info.run_id in version.description and "gzd5" in version.description
    assert "champion" in client.get_registered_model("gz-decals").description


@pytest.mark.e2e
def test_gz_ui_opens_the_experiment_in_the_model_training_view(demo, tmp_path):
    """`gz ui` on the demo's store, looked at in headless Chromium: the experiment's name, the
    `main` run, and its children named by step once the row is expanded."""
    port = free_port()
    command = [sys.executable, "-m", "entry_points.gz", "ui", "--port", str(port)]
    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen(command, cwd=REPO, env=demo["env"], stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, ui, timeout=180)
        url = f"{base}/#/experiments/{demo['experiment']}/runs?workflowType=machine_learning"
        printed = wait_for_line(tmp_path / "ui.log", "MLflow UI ready")  # gz polls /health too
        assert url in printed, printed[-2000:]
        with headless_chromium() as browser:
            browser.get(url)
            wait_for_text(browser, (DEFAULT_EXPERIMENT, "Model training"))
            expander = "//div[@role='row'][.//a[normalize-space()='main']]//button"
            wait_for_element(browser, expander)
            shot(browser, "experiment.png")
            wait_for_element(browser, expander).click()  # shows the child runs
            wait_for_text(browser, STEPS)
            shot(browser, "pipeline-runs.png")
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
        log.close()


def wait_for_line(path: Path, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    return path.read_text()


def shot(browser, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(SCREENSHOTS) / name))


@pytest.mark.e2e
def test_the_python_snippet_register_prints_runs_as_pasted(demo):
    """`register` prints how to load the champion in Python, on an image the model was tested on."""
    command = [sys.executable, "-m", "entry_points.gz", "register", "--name", "gz-decals"]
    done = subprocess.run(command, cwd=REPO, env=demo["env"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    snippet = lines[lines.index("load it in Python:") + 1].strip()
    assert "<" not in snippet, snippet  # a real image, not a placeholder
    ran = subprocess.run(snippet, shell=True, cwd=REPO, env=demo["env"], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "smooth-or-featured_smooth_fraction" in ran.stdout
