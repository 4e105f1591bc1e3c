"""One Optuna trial of real training: the default `train_fn` of `tuning.search.run_tune`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gz_experiments.config import TrainConfig


def training_trial(train: Callable[..., Any]) -> Callable[[TrainConfig, Callable], float]:
    """A trial that runs `train(config, callbacks=[...])` (the tracked train step, in the trial's
    active child run), reports every epoch's logs, and returns the best validation loss."""

    def trial(config: TrainConfig, report: Callable) -> float:
        import keras

        callback = keras.callbacks.LambdaCallback(on_epoch_end=report)
        try:
            return train(config, callbacks=[callback]).best_val_loss
        finally:
            keras.backend.clear_session()  # a long study would otherwise pile up every graph

    return trial
