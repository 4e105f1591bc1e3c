"""The train step as a library function: shards in, best model and its measures out. No MLflow.

    manifest = training_data(config)              # the user's shards, or the default dataset's
    result = run_train(config, manifest, work_dir="run", callbacks=[...])

With ``shard_dir`` empty, the embedded default dataset of the preset is simulated once and
sharded once (`shards.default`, cached). The entry point opens the MLflow run, passes the
tracking callback and logs the `TrainResult` (gz_experiments.tracking.train).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from gz_experiments.config import TrainConfig
from gz_experiments.metrics import baseline_concentrations, baseline_loss
from gz_experiments.shards.default import default_shards
from gz_experiments.shards.manifest import Manifest, load_manifest
from gz_experiments.training.fit import FitResult, fit


@dataclass
class TrainResult:
    """A finished training: the best model and what the run logs about it."""

    config: TrainConfig
    manifest: Manifest
    fit: FitResult
    baseline_val_loss: float  # the image-blind model's validation loss: the bar to beat

    @property
    def best_val_loss(self) -> float:
        return self.fit.best_val_loss

    def summary(self) -> str:
        f = self.fit
        text = (
            f"best val loss {f.best_val_loss:.4f} at epoch {f.best_epoch} of {f.epochs_run} "
            f"(baseline {self.baseline_val_loss:.4f})"
        )
        if self.config.preset == "debug" and f.best_val_loss >= self.baseline_val_loss:
            text += (
                "; the debug preset only checks the plumbing: losing to the baseline is expected"
            )
        return text


def training_data(config: TrainConfig) -> Manifest:
    """The shards to train on: the user's, or the default dataset's (simulated + sharded once)."""
    if config.shard_dir:
        return load_manifest(config.shard_dir)
    return load_manifest(default_shards(config.preset, config.schema, config.greyscale))


def images_per_epoch(config: TrainConfig, manifest: Manifest) -> int:
    if config.steps_per_epoch:
        return config.steps_per_epoch * config.batch_size
    return manifest.n_galaxies("train") // config.batch_size * config.batch_size


def run_train(
    config: TrainConfig,
    manifest: Manifest,
    *,
    work_dir: str | Path,
    callbacks: tuple[keras.callbacks.Callback, ...] | list = (),
) -> TrainResult:
    """Train (or resume from the checkpoints in `work_dir`) and measure the baseline."""
    baseline = baseline_val_loss(manifest)
    result = fit(config, manifest, callbacks=callbacks, work_dir=work_dir)
    return TrainResult(config, manifest, result, baseline)


def baseline_val_loss(manifest: Manifest) -> float:
    """Validation loss of always predicting the training set's vote fractions (see metrics.py)."""
    alphas = baseline_concentrations(manifest.votes("train"), manifest.schema)
    return baseline_loss(manifest.votes("val"), alphas, manifest.schema)
