"""Two real worker processes on loopback train one model (training/distributed.py): one MLflow
run, identical weights, a single process's loss, and a job killed mid-epoch that resumes.

Each job is two processes with a TF_CONFIG naming two free 127.0.0.1 ports, bounded by
JOB_SECONDS and killed by process group when a test ends. The tiny shards of test_train, 16 px
images, 4 steps of a global batch of 16 per epoch: most of the time is TensorFlow starting up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from gz_experiments.config import TrainConfig
from gz_experiments.training.fit import LAST, fit

from .conftest import REPO
from .test_train import shards  # noqa: F401 (the module's tiny shards fixture)

pytestmark = pytest.mark.slow

JOB_SECONDS = 240
HELPER = REPO / "tests" / "multi_worker_train.py"
SETTINGS = {"image_size": 16, "batch_size": 16, "epochs": 2, "steps_per_epoch": 4, "verbose": 0}
# What may differ from one process on the same global batches: each replica normalises its
# slice with its own BatchNorm batch statistics and draws its own augmentation (the module
# docstring of distributed.py). Measured: training loss 2.4-2.5 %, validation loss < 0.5 %.
TRAIN_LOSS_RTOL, VAL_LOSS_RTOL = 0.05, 0.01


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def flags(shard_dir: Path, **changes) -> list[str]:
    settings = {"preset": "debug", "shard_dir": shard_dir, **SETTINGS, **changes}
    return [item for k, v in settings.items() for item in (f"--{k.replace('_', '-')}", str(v))]


def mlflow_run(shard_dir: Path, experiment_id: str) -> list[str]:
    command = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "-e", "train"]
    command += ["--env-manager", "local", "--experiment-id", experiment_id]
    for k, v in {"preset": "debug", "shard_dir": shard_dir, **SETTINGS}.items():
        command += ["-P", f"{k}={v}"]
    return command


@contextmanager
def job(commands: list[list[str]], env: dict[str, str], logs: Path, chief_run: str | None = None):
    """Worker i runs commands[i] with its TF_CONFIG, the chief in MLflow run `chief_run` (as
    `mlflow run` starts a command: MLFLOW_RUN_ID); all are killed when the block ends."""
    ports, workers = free_ports(len(commands)), []
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for i, command in enumerate(commands):
            worker_env = {**env, "TF_CONFIG": tf_config(ports, i)}
            if i == 0 and chief_run:
                worker_env["MLFLOW_RUN_ID"] = chief_run
            with open(logs / f"worker{i}.log", "w") as log:
                workers.append(
                    subprocess.Popen(
                        command,
                        cwd=REPO,
                        env=worker_env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield workers
    finally:
        for worker in workers:
            kill(worker)


def kill(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def finish(workers: list[subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + JOB_SECONDS
    for i, worker in enumerate(workers):
        try:
            code = worker.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = "timeout"
        assert code == 0, f"worker {i}: {code}\n" + (logs / f"worker{i}.log").read_text()[-3000:]


def worker_env(tracking_uri: str, experiment_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "TF_CONFIG")}
    env.update(
        PYTHONPATH=str(REPO),
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_EXPERIMENT_ID=experiment_id,
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="-1",
    )
    return env


def new_store(folder: Path, template: Path) -> tuple[str, str]:
    """A private tracking store and experiment: (tracking URI, experiment id)."""
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True)
    shutil.copyfile(template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment = MlflowClient(uri).create_experiment("jobs", str(folder / "artifacts"))
    return uri, experiment


def weights(path: Path) -> list[np.ndarray]:
    return keras.models.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def two_workers(shards, tmp_path_factory, migrated_tracking_db):  # noqa: F811
    """One uninterrupted two-worker job, the chief started as `mlflow run` starts a command (in
    the run MLFLOW_RUN_ID names), and a single-process fit of the same config."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("two-workers")
    uri, experiment = new_store(folder / "store", migrated_tracking_db)
    client = MlflowClient(uri)
    launcher = client.create_run(experiment).info.run_id  # what `mlflow run` does first
    commands = [
        [sys.executable, str(HELPER), str(folder / f"worker{i}"), *flags(shards.shard_dir)]
        for i in range(2)
    ]
    env = worker_env(uri, experiment)
    with job(commands, env, folder / "logs", launcher) as workers:
        config = TrainConfig.resolve("debug", shard_dir=str(shards.shard_dir), **SETTINGS)
        single = fit(config, shards, work_dir=folder / "single")  # meanwhile, in this process
        finish(workers, folder / "logs")
    return SimpleNamespace(
        uri=uri,
        client=client,
        experiment=experiment,
        chief_run=launcher,
        folder=folder,
        single=single,
    )


def test_two_workers_train_one_model_logged_by_the_chief_only(two_workers):
    import mlflow
    from mlflow.entities import ViewType

    from gz_experiments.tracking.models import load_galaxy_model

    client, experiment = two_workers.client, two_workers.experiment
    (run,) = client.search_runs([experiment], run_view_type=ViewType.ALL)
    assert run.info.run_id == two_workers.chief_run and run.info.status == "FINISHED"
    run_id = run.info.run_id
    for key in ("train_loss", "val_loss", "val_loss/smooth-or-featured", "train_mae/bar"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == [1, 2], key
    artifacts = {f.path for f in client.list_artifacts(run_id)}
    assert {"checkpoints", "plots", "train_config.yaml"} <= artifacts
    checkpoints = {f.path for f in client.list_artifacts(run_id, "checkpoints")}
    assert {"checkpoints/last.keras", "checkpoints/best.keras"} <= checkpoints
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(two_workers.uri)
    try:
        model, _ = load_galaxy_model(f"runs:/{run_id}/model")
    finally:
        mlflow.set_tracking_uri(previous)
    chief = weights(two_workers.folder / "worker0" / "model.keras")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), chief, strict=True))


def test_both_workers_end_with_the_same_weights(two_workers):
    folder = two_workers.folder
    for name in ("model.keras", f"checkpoints/{LAST}"):
        chief, other = (weights(folder / f"worker{i}" / name) for i in range(2))
        assert all(np.array_equal(a, b) for a, b in zip(chief, other, strict=True)), name


def test_the_loss_is_a_single_process_loss_on_the_same_global_batches(two_workers):
    client, chief_run, single = two_workers.client, two_workers.chief_run, two_workers.single
    for key, single_key, rtol in (
        ("train_loss", "loss", TRAIN_LOSS_RTOL),
        ("val_loss", "val_loss", VAL_LOSS_RTOL),
    ):
        history = sorted(client.get_metric_history(chief_run, key), key=lambda m: m.step)
        np.testing.assert_allclose(
            [m.value for m in history], single.history[single_key], rtol=rtol, err_msg=key
        )


def test_a_job_killed_mid_epoch_resumes_from_its_last_checkpoint(
    shards,  # noqa: F811
    two_workers,
    tmp_path,
    migrated_tracking_db,
):
    """Started as documented (`mlflow run` on the chief, `python -m entry_points.train` on the
    other); the non-chief is killed in epoch 2, the job restarted (as a cluster manager restarts
    it) with resume_run_id; it ends as an uninterrupted job ends, in the one run."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    uri, experiment = new_store(tmp_path / "store", migrated_tracking_db)
    client, env = MlflowClient(uri), worker_env(uri, experiment)
    other = [sys.executable, "-m", "entry_points.train", *flags(shards.shard_dir)]
    with job([mlflow_run(shards.shard_dir, experiment), other], env, tmp_path / "logs1") as workers:
        run_id = wait_for_first_checkpoint(client, experiment, workers)
        kill(workers[1])  # in epoch 2: its checkpoint is not written yet
        assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1]
    chief = [sys.executable, str(HELPER), str(tmp_path / "chief"), *flags(shards.shard_dir)]
    resume = ["--resume-run-id", run_id]
    with job([chief + resume, other + resume], env, tmp_path / "logs2") as workers:
        finish(workers, tmp_path / "logs2")

    (run,) = client.search_runs([experiment], run_view_type=ViewType.ALL)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1, 2]
    resumed = weights(tmp_path / "chief" / "model.keras")
    uninterrupted = weights(two_workers.folder / "worker0" / "model.keras")
    for a, b in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_mlflow_run_on_a_non_chief_worker_refuses_at_once_in_its_run(
    shards,  # noqa: F811
    tmp_path,
    migrated_tracking_db,
):
    """It would give the job a second run; it says how workers are started, before any work."""
    from mlflow.tracking import MlflowClient

    uri, experiment = new_store(tmp_path / "store", migrated_tracking_db)
    env = {**worker_env(uri, experiment), "TF_CONFIG": tf_config(free_ports(2), 1)}
    out = subprocess.run(
        mlflow_run(shards.shard_dir, experiment), cwd=REPO, env=env, capture_output=True,
        text=True, timeout=JOB_SECONDS,
    )  # fmt: skip
    assert out.returncode != 0
    assert (
        "error: this is a non-chief worker of a multi-worker job (TF_CONFIG): start non-chief "
        "workers with `python -m entry_points.train` and the same parameters" in out.stderr
    )
    (run,) = MlflowClient(uri).search_runs([experiment])
    assert run.info.status == "FAILED" and "non-chief" in run.data.tags["mlflow.note.content"]


def wait_for_first_checkpoint(client, experiment: str, workers) -> str:
    """The chief's run id, once its epoch-1 checkpoint is uploaded (state.json goes last)."""
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        assert all(w.poll() is None for w in workers), "a worker ended before its first epoch"
        for run in client.search_runs([experiment]):
            names = {f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")}
            if "checkpoints/state.json" in names:
                return run.info.run_id
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint after {JOB_SECONDS} s")


def test_two_workers_finetune_the_chiefs_model_into_one_run(shards, two_workers):  # noqa: F811
    """`python -m entry_points.finetune` on both workers (the CLI's start-up order): a new head
    on the two-worker model, trained by both, logged once."""
    from mlflow.entities import ViewType

    client, experiment = two_workers.client, two_workers.experiment
    parent = f"runs:/{two_workers.chief_run}/model"
    settings = ["--model-uri", parent, "--shard-dir", str(shards.shard_dir), "--preset", "debug"]
    settings += ["--epochs", "2", "--steps-per-epoch", "4", "--verbose", "0"]
    command = [sys.executable, "-m", "entry_points.finetune", *settings]
    logs = two_workers.folder / "finetune-logs"
    with job([command] * 2, worker_env(two_workers.uri, experiment), logs) as workers:
        finish(workers, logs)

    runs = client.search_runs([experiment], filter_string="tags.`gz.step` = 'finetune'")
    (run,) = runs
    assert run.info.status == "FINISHED" and run.data.tags["gz.parent_model_uri"] == parent
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
    everything = client.search_runs([experiment], run_view_type=ViewType.ALL)
    assert len(everything) == 2  # and the train job's
