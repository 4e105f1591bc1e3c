"""Configs validate themselves completely on construction, with one line naming every problem,
before any work (no simulation, no shards, no MLflow run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gz_experiments.config import (
    STEP_CONFIGS,
    ConfigError,
    PredictConfig,
    Sampling,
    ShardConfig,
    TrainConfig,
)

from .conftest import REPO


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": 0}, "batch_size=0 must be >= 1"),
        ({"batch_size": -1}, "batch_size=-1 must be >= 1"),
        ({"steps_per_epoch": -5}, "steps_per_epoch=-5 must be >= 0"),
        ({"shuffle_buffer": 0}, "shuffle_buffer=0 must be >= 1"),
        ({"image_size": 100000}, "image_size=100000 must be <= 1024"),
        ({"epochs": 0}, "epochs=0 must be >= 1"),
        ({"dropout": 1.0}, "dropout=1.0 must be < 1"),
        ({"learning_rate": float("nan")}, "learning_rate=nan must be a finite number"),
        ({"architecture": "resnet9"}, "architecture='resnet9' is not one of"),
        ({"epochs": "3"}, "epochs='3' must be a whole number"),
    ],
)
def test_train_config_refuses_bad_values(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.resolve("debug", **values)


def test_every_problem_is_named_in_one_line():
    with pytest.raises(ConfigError) as info:
        TrainConfig.resolve("debug", batch_size=0, epochs=0, crop_fraction=2.0)
    message = str(info.value)
    assert "\n" not in message
    for part in ("batch_size=0", "epochs=0", "crop_fraction=2.0"):
        assert part in message


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (PredictConfig, {"batch_size": 0}, "batch_size=0 must be >= 1"),
        (PredictConfig, {"n_samples": 100000}, "n_samples=100000 must be <= 100"),
        (PredictConfig, {"mc_mode": "both"}, "mc_mode='both' is not one of head, full"),
        (ShardConfig, {"val_fraction": 0.5, "test_fraction": 0.5}, "must be below 1"),
        (ShardConfig, {"encoding": "jpeg"}, "encoding='jpeg' is not one of raw, png"),
        (ShardConfig, {"img_size": 0}, "img_size=0 must be >= 1"),
    ],
)
def test_other_steps_refuse_bad_values(cls, values, message):
    with pytest.raises(ConfigError, match=message):
        cls.resolve("debug", **values)


def test_sampling_ranges_are_the_served_model_ranges():
    with pytest.raises(ConfigError, match="batch_size=0"):
        Sampling(batch_size=0)
    assert PredictConfig.resolve("debug", n_samples=7, seed=3).sampling == Sampling(
        n_samples=7, batch_size=16, seed=3
    )


def test_every_step_config_has_help_for_every_field():
    for step, cls in STEP_CONFIGS.items():
        assert step == cls.STEP
        required = {
            "ingest": {"sources": ("a.csv",), "out": "o"},
            "combine": {"catalogs": ("a.csv", "b.parquet"), "out": "o"},
            "pretrain": {"catalogs": ("a.csv", "b.parquet"), "out": "o"},
        }.get(step, {})
        default = cls.resolve("debug", **required)  # every preset of every step is valid
        for name in default.to_dict():
            assert name == "preset" or cls.describe(name), f"{step}.{name} has no help text"


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "--batch-size", "-1", "--model-uri", "m", "--input", "."],
        ["predict", "--batch-size", "0", "--model-uri", "m", "--input", "."],
        ["train", "--batch-size", "0"],
        ["train", "--image-size", "100000"],
        ["train", "--epochs", "three"],
    ],
)
def test_entry_points_refuse_bad_flags_in_one_line_before_any_work(argv, tmp_path):
    """No traceback, exit 2, and nothing done: no simulated data, no MLflow store."""
    env = {**os.environ, "GZ_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", f"entry_points.{argv[0]}", "--preset", "debug", *argv[1:]],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error", "usage"))]
    assert lines and "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "mlflow.db").exists()
