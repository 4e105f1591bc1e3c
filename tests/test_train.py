"""training.fit (checkpoints, exact resume, early stopping), the MLflow epoch logger, the train
entry point (run, crash, resume)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gz_experiments.config import ConfigError, ShardConfig, TrainConfig
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.schema import get_schema
from gz_experiments.shards.manifest import load_manifest
from gz_experiments.shards.writer import run_shard
from gz_experiments.training.fit import (
    BEST,
    LAST,
    STATE,
    BriefProgressBar,
    Checkpointer,
    EpochLine,
    TrainState,
    compile_model,
    fit,
    model_spec,
    progress_callbacks,
)

from .conftest import REPO

SCHEMA = get_schema("gzd5")
QUESTIONS = [q.name for q in SCHEMA.questions]


def write_catalog(folder: Path, n: int = 60, size: int = 32, seed: int = 0) -> Path:
    """Discs whose radius drives the smooth/featured votes: a little signal to learn."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size] - size / 2
    rows = []
    for i in range(n):
        radius = rng.uniform(2, size / 2)
        pixels = np.clip(
            (np.hypot(xx, yy) < radius) * 200 + rng.normal(20, 10, (size, size)), 0, 255
        )
        path = folder / "images" / f"g{i}.png"
        Image.fromarray(pixels.astype(np.uint8)).convert("RGB").save(path)
        votes = rng.integers(0, 4, SCHEMA.n_answers).astype(float)
        votes[0] = round(radius)  # smooth
        rows.append(
            {
                "id_str": f"g{i}",
                "file_loc": str(path),
                **dict(zip(SCHEMA.label_cols, votes, strict=True)),
            }
        )
    catalog = folder / "catalog.csv"
    pd.DataFrame(rows).to_csv(catalog, index=False)
    return catalog


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    config = ShardConfig.resolve(
        "debug",
        catalog=str(write_catalog(folder)),
        shard_dir=str(folder / "shards"),
        img_size=24,
        val_fraction=0.2,
        test_fraction=0.1,
        n_workers=1,
    )
    run_shard(config, progress=False)
    return load_manifest(folder / "shards")


def debug_config(shards, **changes) -> TrainConfig:
    changes = {"epochs": 2, "batch_size": 16, "image_size": 16, "verbose": 0, **changes}
    return TrainConfig.resolve("debug", shard_dir=str(shards.shard_dir), **changes)


def test_fit_keeps_the_best_model_and_checkpoints(shards, tmp_path):
    result = fit(debug_config(shards), shards, work_dir=tmp_path)
    assert result.epochs_run == 2 and len(result.history["val_loss"]) == 2
    assert result.best_val_loss == min(result.history["val_loss"])
    assert result.best_epoch == 1 + int(np.argmin(result.history["val_loss"]))
    assert {f"val_loss/{q}" for q in QUESTIONS} <= set(result.history)
    assert {f"val_mae/{q}" for q in QUESTIONS} <= set(result.history)
    assert {p.name for p in result.checkpoint_dir.iterdir()} == {BEST, LAST, STATE}
    served = keras.models.load_model(result.model_path, compile=False)
    assert getattr(served, "optimizer", None) is None  # the logged model carries no optimizer state
    x = np.random.default_rng(0).random((2, 24, 24, 1), dtype=np.float32)
    np.testing.assert_allclose(served.predict(x, verbose=0), result.model.predict(x, verbose=0))


def test_resume_continues_with_optimizer_and_early_stopping_state(shards, tmp_path):
    first = fit(debug_config(shards, epochs=1), shards, work_dir=tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")

    resumed = fit(debug_config(shards, epochs=2), shards, work_dir=tmp_path / "a")
    assert resumed.epochs_run == 2
    assert resumed.history["val_loss"][0] == first.history["val_loss"][0]
    last = keras.models.load_model(tmp_path / "a" / "checkpoints" / LAST)
    steps_per_epoch = shards.n_galaxies("train") // 16
    assert int(last.optimizer.iterations) == 2 * steps_per_epoch
    again = fit(debug_config(shards, epochs=2), shards, work_dir=tmp_path / "a")  # nothing to do
    assert again.epochs_run == 2 and again.history == resumed.history

    checkpoints = tmp_path / "b" / "checkpoints"
    state = TrainState.load(checkpoints)
    state.best_val_loss, state.wait = -1e9, 1  # nothing can improve; one patient epoch left
    state.save(checkpoints)
    stopped = fit(debug_config(shards, epochs=10, patience=2), shards, work_dir=tmp_path / "b")
    assert stopped.epochs_run == 2 and stopped.stopped_early


def test_a_resumed_run_takes_the_same_steps_as_an_uninterrupted_one(shards, tmp_path):
    """Epoch e reads the data in the order of (seed, e) and the generators continue from their
    saved states, so stopping after epoch 1 and resuming changes nothing."""
    config = debug_config(shards, epochs=3, patience=5, dropout=0.3)
    straight = fit(config, shards, work_dir=tmp_path / "straight")
    fit(config.replace(epochs=1), shards, work_dir=tmp_path / "resumed")
    resumed = fit(config, shards, work_dir=tmp_path / "resumed")
    np.testing.assert_allclose(
        resumed.history["loss"], straight.history["loss"], rtol=1e-5, atol=1e-6
    )
    last = [
        keras.models.load_model(tmp_path / d / "checkpoints" / LAST)
        for d in ("straight", "resumed")
    ]
    for a, b in zip(last[0].weights, last[1].weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)


def test_config_and_shard_mismatches_are_user_errors(shards, tmp_path):
    with pytest.raises(UserError, match="pass -P schema=gzd5"):
        model_spec(debug_config(shards, schema="gz2"), shards)
    with pytest.raises(UserError, match="greyscale"):
        model_spec(debug_config(shards, greyscale=False), shards)
    with pytest.raises(ConfigError, match="crop_fraction=1.5 must be <= 1"):
        debug_config(shards, crop_fraction=1.5)
    with pytest.raises(UserError, match="lower batch_size"):
        fit(debug_config(shards, batch_size=4096), shards, work_dir=tmp_path)


def test_progress_is_quiet_in_ci_and_one_line_per_epoch_in_logs(monkeypatch):
    assert progress_callbacks(0, 5) == []
    assert isinstance(progress_callbacks(2, 5)[0], EpochLine)
    monkeypatch.setenv("CI", "true")
    assert progress_callbacks(-1, 5) == []


def test_progress_bar_shows_the_totals_only(capsys):
    bar = progress_callbacks(1, 3)[0]
    assert isinstance(bar, BriefProgressBar)
    bar.set_params({"steps": 2, "epochs": 1, "verbose": 0})
    bar.on_epoch_begin(1)
    for step in range(2):
        bar.on_train_batch_end(step, {"loss": 1.5, "loss/bar": 0.25})
    bar.on_epoch_end(1, {"loss": 1.25, "loss/bar": 0.25, "val_loss": 2.0, "val_loss/bar": 1.0})
    out = capsys.readouterr().out
    assert "Epoch 2/3" in out and "2/2" in out
    assert "loss: 1.2500" in out and "val_loss: 2.0000" in out and "/bar" not in out


def test_epoch_logger_logs_every_metric_each_epoch_and_uploads_checkpoints(tracking, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from gz_experiments.models import build_model
    from gz_experiments.tracking.train import MlflowEpochLogger, download_checkpoints

    config = TrainConfig.resolve("debug", image_size=16, verbose=0)
    spec = model_spec_like(config)
    model = build_model(spec, seed=0)
    compile_model(model, config, spec)
    rng = np.random.default_rng(0)
    x = rng.random((32, 24, 24, 1), dtype=np.float32)
    y = rng.integers(0, 5, (32, SCHEMA.n_answers)).astype(np.float32)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    with mlflow.start_run() as run:
        logger = MlflowEpochLogger(images_per_epoch=32, checkpoint_dir=checkpoints)
        saver = Checkpointer(checkpoints, patience=5, state=TrainState())
        model.fit(
            x,
            y,
            validation_data=(x, y),
            batch_size=16,
            epochs=2,
            verbose=0,
            callbacks=[saver, logger],
        )
    client = MlflowClient()
    expected = ["train_loss", "val_loss", "learning_rate", "epoch_seconds", "images_per_second"]
    expected += [f"{kind}/{q}" for q in QUESTIONS for kind in ("train_loss", "val_loss", "val_mae")]
    for key in expected:
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
    assert np.isclose(client.get_metric_history(run.info.run_id, "learning_rate")[0].value, 1e-3)
    local = download_checkpoints(run.info.run_id, tmp_path / "download")
    assert {p.name for p in local.iterdir()} == {BEST, LAST, STATE}
    assert json.loads((local / STATE).read_text())["epoch"] == 2


def model_spec_like(config: TrainConfig) -> ModelSpec:
    return ModelSpec(
        config.architecture,
        24,
        1,
        config.crop_fraction,
        config.image_size,
        config.dropout,
        SCHEMA,
    )


class CrashAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("simulated crash")


def test_train_logs_the_run_and_resumes_a_crashed_one(shards, tracking, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")

    from entry_points.train import run as run_training

    config = debug_config(shards, epochs=2, patience=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(config, callbacks=[CrashAfterFirstEpoch()])
    client = MlflowClient()
    (crashed,) = client.search_runs([os.environ["MLFLOW_EXPERIMENT_ID"]])
    assert crashed.info.status == "FAILED" and crashed.info.run_name == "train"

    result = run_training(TrainConfig.resolve("debug", resume_run_id=crashed.info.run_id))
    run = client.get_run(crashed.info.run_id)
    run_id = crashed.info.run_id
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1, 2]
    assert run.data.metrics["epochs_run"] == 2
    assert run.data.metrics["best_val_loss"] == pytest.approx(result.best_val_loss)
    assert run.data.metrics["baseline_val_loss"] == pytest.approx(result.baseline_val_loss)
    assert (
        run.data.tags["gz.schema"] == "gzd5" and len(run.data.tags["gz.data_manifest_sha256"]) == 64
    )
    assert run.data.params["train.batch_size"] == "16"
    artifacts = {f.path for f in client.list_artifacts(run_id)}
    assert {"checkpoints", "data", "plots", "model_summary.txt", "train_config.yaml"} <= artifacts
    plots = {f.path for f in client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/loss.png", "plots/per_question_loss.png"}
    inputs = {i.dataset.name: i.tags for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"gzd5/train", "gzd5/val"}
    assert any(key.startswith("system/") for key in run.data.metrics)  # CPU, memory
    from gz_experiments.tracking.models import load_galaxy_model

    model, spec = load_galaxy_model(f"runs:/{run_id}/model")
    assert spec == result.fit.spec and model.output_shape == (None, SCHEMA.n_answers)
    with pytest.raises(UserError, match="already finished"):
        run_training(TrainConfig.resolve("debug", resume_run_id=run_id))


def test_mirrored_replicas_take_the_same_step_as_one_device():
    """Keras 3 scales the loss by the global batch under tf.distribute (losses.py docstring)."""
    script = REPO / "tests" / "mirrored_step.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    replicas, relative_difference = out.stdout.split()[-2:]
    assert replicas == "2" and float(relative_difference) < 1e-5


def test_a_run_killed_mid_epoch_resumes_exactly_in_a_new_process(shards, tmp_path):
    """kill -9 in the middle of epoch 2, then resume in a fresh process: the same losses as an
    uninterrupted run. (Resuming in the process that trained kept TensorFlow's global seed, which
    the data order depends on, so only a new process showed the resumed epochs' other order.)"""
    from .killed_fit import config

    straight = fit(config(str(shards.shard_dir), 3), shards, work_dir=tmp_path / "straight")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "tests.killed_fit", str(shards.shard_dir), str(tmp_path / "k")]
    killed = subprocess.run([*command, "3", "1"], cwd=REPO, env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert TrainState.load(tmp_path / "k" / "checkpoints").epoch == 1  # epoch 2 was cut short
    subprocess.run([*command, "3", "-1"], cwd=REPO, env=env, check=True, capture_output=True)
    resumed = json.loads((tmp_path / "k" / "history.json").read_text())
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(resumed[key], straight.history[key], rtol=1e-5, err_msg=key)
