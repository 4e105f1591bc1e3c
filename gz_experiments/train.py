"""Fit a Galaxy Zoo model on shards, with checkpoints that make training resumable.

    result = fit(TrainConfig.resolve("debug"), "path/to/shards", work_dir="run")

`fit` knows nothing about MLflow: tracking is a Keras callback passed in `callbacks`
(gz_experiments.tracking.keras_callback), called after this module's `Checkpointer`, so it can
upload the checkpoint files each epoch.

Checkpoints live in ``<work_dir>/checkpoints``: ``last.keras`` and ``best.keras`` (full models
including optimizer state) and ``state.json`` (epochs done, best val loss and its epoch, the
early-stopping wait, the history). If they exist when `fit` starts, training resumes from
``last.keras`` at the next epoch with the early-stopping state restored, so an interrupted run
ends after the same number of epochs as an uninterrupted one.

Loss convention (see losses.py): per galaxy the sum over questions, per batch the mean over the
global batch, also under `tf.distribute` (checked in tests/test_train.py).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from gz_experiments.config import TrainConfig
from gz_experiments.data import make_dataset
from gz_experiments.errors import UserError
from gz_experiments.losses import loss_for, per_question_metric
from gz_experiments.manifest import Manifest, load_manifest
from gz_experiments.metrics import baseline_concentrations, baseline_loss, vote_fraction_mae
from gz_experiments.models import ModelSpec, build_model
from gz_experiments.schema import get_schema

CHECKPOINT_DIR = "checkpoints"
LAST, BEST, STATE = "last.keras", "best.keras", "state.json"


@dataclass
class TrainState:
    """What resuming needs besides the weights; saved as state.json after every epoch."""

    epoch: int = 0  # epochs completed
    best_val_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0  # epochs since the best one (early stopping)
    stopped_early: bool = False
    history: dict[str, list[float]] = field(default_factory=dict)

    def save(self, directory: Path) -> None:
        tmp = directory / (STATE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, directory / STATE)

    @classmethod
    def load(cls, directory: Path) -> TrainState:
        path = directory / STATE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()


@dataclass
class TrainResult:
    best_val_loss: float
    baseline_val_loss: float
    history: dict[str, list[float]]
    model: keras.Model  # best weights, no optimizer
    model_path: Path  # the same, as .keras
    spec: ModelSpec
    epochs_run: int  # in total, including epochs before a resume
    best_epoch: int
    stopped_early: bool
    checkpoint_dir: Path
    run_id: str = ""  # set by experiment.run_training


class Checkpointer(keras.callbacks.Callback):
    """Saves last/best models and state each epoch and stops after `patience` epochs without gain.

    Files are written to a temporary name and renamed, so a kill mid-save never leaves a
    truncated checkpoint; state.json is renamed last and names the epoch of last.keras.
    """

    def __init__(self, directory: Path, patience: int, state: TrainState):
        super().__init__()
        self.directory, self.patience, self.state = directory, patience, state

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        state = self.state
        state.epoch = epoch + 1
        for key, value in logs.items():
            state.history.setdefault(key, []).append(float(value))
        val_loss = float(logs.get("val_loss", math.nan))
        if val_loss < state.best_val_loss:  # False for NaN
            state.best_val_loss, state.best_epoch, state.wait = val_loss, epoch + 1, 0
            self._save(BEST)
        else:
            state.wait += 1
        self._save(LAST)
        if state.wait >= self.patience:
            state.stopped_early = True
            self.model.stop_training = True
        state.save(self.directory)

    def _save(self, name: str) -> None:
        tmp = self.directory / f"tmp-{name}"
        self.model.save(tmp)
        os.replace(tmp, self.directory / name)


def fit(
    config: TrainConfig,
    manifest: Manifest | str | Path,
    *,
    callbacks: tuple[keras.callbacks.Callback, ...] | list = (),
    work_dir: str | Path,
) -> TrainResult:
    """Train (or resume from `work_dir`'s checkpoints) and return the best model."""
    manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    spec = model_spec(config, manifest)
    checkpoints = Path(work_dir) / CHECKPOINT_DIR
    checkpoints.mkdir(parents=True, exist_ok=True)
    state = TrainState.load(checkpoints)
    baseline = baseline_val_loss(manifest)
    with dtype_policy(config.mixed_precision):
        strategy = distribution_strategy()
        # Offset by the epochs already done so a resumed run does not replay epoch 1's shuffle.
        keras.utils.set_random_seed(config.seed + state.epoch)
        train_data, val_data = datasets(config, manifest, seed=config.seed + state.epoch)
        with strategy.scope():
            model = load_or_build(spec, config, checkpoints, state)
        if state.epoch < config.epochs and not state.stopped_early:
            train_epochs(model, config, (train_data, val_data), state, checkpoints, callbacks)
        if not (checkpoints / BEST).exists():
            raise UserError(
                f"no epoch gave a finite validation loss (history: {state.history.get('val_loss')}): "
                f"lower learning_rate or check the shards"
            )
        best = keras.models.load_model(checkpoints / BEST, compile=False)
    model_path = Path(work_dir) / "model.keras"
    best.save(model_path)  # loaded uncompiled: no optimizer state in the served model
    return TrainResult(
        best_val_loss=state.best_val_loss,
        baseline_val_loss=baseline,
        history=state.history,
        model=best,
        model_path=model_path,
        spec=spec,
        epochs_run=state.epoch,
        best_epoch=state.best_epoch,
        stopped_early=state.stopped_early,
        checkpoint_dir=checkpoints,
    )


def train_epochs(model, config, data, state, checkpoints, callbacks) -> None:
    """Keras fit from the epoch after `state.epoch`; our callbacks run before the caller's."""
    train_data, val_data = data
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        initial_epoch=state.epoch,
        steps_per_epoch=config.steps_per_epoch or None,
        shuffle=False,  # make_dataset shuffles files and examples itself
        callbacks=[
            Checkpointer(checkpoints, config.patience, state),
            keras.callbacks.TerminateOnNaN(),
            *callbacks,
            *progress_callbacks(config.verbose),
        ],
        verbose=0,
    )


def model_spec(config: TrainConfig, manifest: Manifest) -> ModelSpec:
    """The model for these shards: the manifest's schema and image size, the config's choices."""
    check_config(config)
    if get_schema(config.schema) != manifest.schema:
        raise UserError(
            f"the shards in {manifest.path} use the {manifest.schema.name!r} tree but "
            f"schema={config.schema!r}: pass -P schema={manifest.schema.name}"
        )
    if not config.greyscale and manifest.channels == 1:
        raise UserError(
            f"the shards in {manifest.path} are greyscale but greyscale=false: re-shard in colour "
            f"(-P greyscale=false on the shard step) or train with greyscale=true"
        )
    return ModelSpec(
        architecture=config.architecture,
        input_size=manifest.img_size,
        channels=1 if config.greyscale else manifest.channels,
        crop_fraction=config.crop_fraction,
        image_size=config.image_size,
        dropout=config.dropout,
        schema=manifest.schema.to_dict(),
    )


def check_config(config: TrainConfig) -> None:
    problems = {
        "crop_fraction": not 0 < config.crop_fraction <= 1,
        "image_size": config.image_size < 1,
        "dropout": not 0 <= config.dropout < 1,
        "batch_size": config.batch_size < 1,
        "epochs": config.epochs < 1,
        "patience": config.patience < 1,
        "learning_rate": not config.learning_rate > 0,
    }
    bad = [name for name, is_bad in problems.items() if is_bad]
    if bad:
        shown = ", ".join(f"{name}={getattr(config, name)!r}" for name in bad)
        raise UserError(
            f"invalid training config: {shown} (crop_fraction in (0, 1], dropout in [0, 1), "
            f"learning_rate > 0, the others >= 1)"
        )


def datasets(config: TrainConfig, manifest: Manifest, seed: int) -> tuple[tf.data.Dataset, ...]:
    for split in ("train", "val"):
        if split not in manifest.split_names or manifest.n_galaxies(split) == 0:
            raise UserError(f"the shards in {manifest.path} have no {split!r} galaxies: re-shard")
    n_train = manifest.n_galaxies("train")
    if n_train < config.batch_size:
        raise UserError(
            f"batch_size={config.batch_size} is larger than the {n_train} training galaxies in "
            f"{manifest.path}: lower batch_size"
        )
    greyscale = True if config.greyscale and manifest.channels == 3 else None
    train = make_dataset(
        manifest,
        "train",
        batch_size=config.batch_size,
        training=True,
        greyscale=greyscale,
        seed=seed,
        repeat=config.steps_per_epoch > 0,
        shuffle_buffer=config.shuffle_buffer,
    )
    val = make_dataset(
        manifest, "val", batch_size=config.batch_size, training=False, greyscale=greyscale
    )
    # TFRecord datasets have unknown length; telling Keras gives it a progress bar target and
    # spares it from discovering the end (and warning about it) in the first epoch.
    if not config.steps_per_epoch:
        train = train.apply(tf.data.experimental.assert_cardinality(n_train // config.batch_size))
    n_val_batches = math.ceil(manifest.n_galaxies("val") / config.batch_size)
    return train, val.apply(tf.data.experimental.assert_cardinality(n_val_batches))


def compile_model(model: keras.Model, config: TrainConfig, spec: ModelSpec) -> None:
    schema = spec.get_schema()
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=loss_for(schema),
        metrics=[per_question_metric(schema), vote_fraction_mae(schema)],
    )


def load_or_build(
    spec: ModelSpec, config: TrainConfig, checkpoints: Path, state: TrainState
) -> keras.Model:
    """last.keras (weights + optimizer state) when resuming, else a fresh seeded model."""
    if state.epoch > 0:
        if not (checkpoints / LAST).exists():
            raise UserError(f"{checkpoints / STATE} says epoch {state.epoch} but {LAST} is missing")
        return keras.models.load_model(checkpoints / LAST)
    model = build_model(spec, seed=config.seed)
    compile_model(model, config, spec)
    return model


def split_counts(manifest: Manifest, split: str) -> np.ndarray:
    """Vote counts of a split (galaxies, answers), from the per-split catalog beside the shards."""
    table = pd.read_parquet(manifest.catalog_path(split), columns=manifest.label_cols)
    return table.to_numpy(dtype=np.float64)


def baseline_val_loss(manifest: Manifest) -> float:
    """Validation loss of always predicting the training set's vote fractions (see metrics.py)."""
    alphas = baseline_concentrations(split_counts(manifest, "train"), manifest.schema)
    return baseline_loss(split_counts(manifest, "val"), alphas, manifest.schema)


def distribution_strategy() -> tf.distribute.Strategy:
    """Several workers (TF_CONFIG) or several GPUs: mirrored replicas; else the default."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """False on the non-chief workers of a multi-worker job (TF_CONFIG): only the chief logs."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if not tf_config:
        return True
    task = tf_config.get("task", {})
    if "chief" in tf_config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


@contextmanager
def dtype_policy(mixed_precision: bool):
    """mixed_float16 for the duration of one fit (the head stays float32, see models.py)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def progress_callbacks(verbose: int) -> list[keras.callbacks.Callback]:
    """-1 = a progress bar on a terminal, one line per epoch in a log, nothing in CI.

    Only the totals are shown: the ~60 per-question values are in MLflow, not on the console.
    """
    if verbose < 0:
        verbose = (
            0
            if os.environ.get("CI", "").lower() in ("1", "true")
            else 1
            if sys.stdout.isatty()
            else 2
        )
    return {0: [], 1: [BriefProgressBar()]}.get(verbose, [EpochLine()])


def _totals(logs: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (logs or {}).items() if "/" not in k}


class BriefProgressBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar showing loss and val_loss only."""

    def set_params(self, params):
        super().set_params(params)
        self.verbose = 1  # fit runs with verbose=0 so that Keras adds no bar of its own

    def _update_progbar(self, batch, logs=None):
        super()._update_progbar(batch, _totals(logs))

    def _finalize_progbar(self, logs):
        super()._finalize_progbar(_totals(logs))


class EpochLine(keras.callbacks.Callback):
    """One line per epoch, for logs and pipes."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        values = " - ".join(f"{k} {v:.4f}" for k, v in _totals(logs).items())
        print(f"epoch {epoch + 1}/{self.params['epochs']} - {seconds:.1f}s - {values}", flush=True)
