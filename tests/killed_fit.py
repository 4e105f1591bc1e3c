"""`fit` in a process of its own, optionally SIGKILLed in the middle of an epoch (tests only).

    python -m tests.killed_fit SHARD_DIR WORK_DIR EPOCHS KILL_EPOCH   # KILL_EPOCH -1: no kill

Writes WORK_DIR/history.json when training finishes. A kill -9 is a real crash: no callback,
`finally` or atexit runs, and whatever lived only in the process (TensorFlow's global seed,
Keras' generators, tf.data iterators) is gone, as when a machine dies.
"""

import json
import os
import signal
import sys
from pathlib import Path

import keras

from gz_experiments.config import TrainConfig
from gz_experiments.shards.manifest import load_manifest
from gz_experiments.training.fit import fit


class KillMidEpoch(keras.callbacks.Callback):
    def __init__(self, kill_epoch: int):
        super().__init__()
        self.kill_epoch, self.epoch = kill_epoch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.kill_epoch:  # after the first step of that epoch
            os.kill(os.getpid(), signal.SIGKILL)


def config(shard_dir: str, epochs: int) -> TrainConfig:
    return TrainConfig.resolve(
        "debug", shard_dir=shard_dir, epochs=epochs, batch_size=16, image_size=16, verbose=0,
        patience=5, dropout=0.3,
    )  # fmt: skip


if __name__ == "__main__":
    shard_dir, work_dir, epochs, kill_epoch = sys.argv[1:5]
    result = fit(
        config(shard_dir, int(epochs)),
        load_manifest(shard_dir),
        callbacks=[KillMidEpoch(int(kill_epoch))],
        work_dir=work_dir,
    )
    (Path(work_dir) / "history.json").write_text(json.dumps(result.history))
