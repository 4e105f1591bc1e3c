"""Fit a Galaxy Zoo model on shards, with checkpoints that make training resumable.

    result = fit(TrainConfig.resolve("debug"), manifest, work_dir="run")

`fit` knows nothing about MLflow: tracking is a Keras callback passed in `callbacks`, called
after this module's `Checkpointer`, so it can upload the checkpoint files each epoch.

Checkpoints live in ``<work_dir>/checkpoints``: ``last.keras`` and ``best.keras`` (full models
including optimizer state) and ``state.json`` (epochs done, best val loss and its epoch, the
early-stopping wait, the history and the model's random-generator states). If they exist when
`fit` starts, training resumes from ``last.keras`` at the next epoch with all of that restored.

Resuming is exact: epoch e always reads the training data in the order drawn from
(seed, e), whether or not the run was interrupted before it, and the augmentation and dropout
generators continue from their saved states; so a resumed run takes the same steps as an
uninterrupted one (bit for bit where TensorFlow's CPU kernels are deterministic; see
tests/test_train.py).

Loss convention (see losses.py): per galaxy the sum over questions, per batch the mean over the
global batch, also under `tf.distribute` (checked in tests/test_train.py).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gz_experiments import campaigns
from gz_experiments.config import TrainConfig, gpu_visible
from gz_experiments.errors import UserError
from gz_experiments.losses import loss_for, per_question_metric
from gz_experiments.metrics import vote_fraction_mae
from gz_experiments.model_files import BEST, CHECKPOINT_DIR, LAST, SEED_STATE_SUFFIX, STATE
from gz_experiments.model_spec import ModelSpec
from gz_experiments.models import build_model
from gz_experiments.shards.dataset import make_dataset
from gz_experiments.shards.manifest import Manifest
from gz_experiments.training import distributed


@dataclass
class TrainState:
    """What resuming needs besides the weights; saved as state.json after every epoch."""

    epoch: int = 0  # epochs completed
    best_val_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0  # epochs since the best one (early stopping)
    stopped_early: bool = False
    history: dict[str, list[float]] = field(default_factory=dict)
    rng: list[list[int]] = field(default_factory=list)  # generator states after `epoch`

    def save(self, directory: Path) -> None:
        tmp = directory / (STATE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, directory / STATE)

    @classmethod
    def load(cls, directory: Path) -> TrainState:
        path = directory / STATE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()


@dataclass
class FitResult:
    """The outcome of `fit`: the best model (in memory and as .keras) and how training went."""

    best_val_loss: float
    history: dict[str, list[float]]
    model: keras.Model  # best weights, no optimizer
    model_path: Path  # the same, as .keras
    spec: ModelSpec
    epochs_run: int  # in total, including epochs before a resume
    best_epoch: int
    stopped_early: bool
    checkpoint_dir: Path
    campaign_weights: dict[str, float] = field(default_factory=dict)  # campaign_balance=equal


def _seed_variables(model: keras.Model) -> list:
    # In the model's layer order: variable names are renumbered when a model is loaded, and a
    # .keras file stores neither the generators' seeds nor their counters.
    return [v for v in model.variables if v.path.endswith(SEED_STATE_SUFFIX)]


def rng_states(model: keras.Model) -> list[list[int]]:
    """The augmentation and dropout generators' states (seed, counter), in layer order."""
    return [np.asarray(v.numpy()).tolist() for v in _seed_variables(model)]


def restore_rng_states(model: keras.Model, states: list[list[int]]) -> None:
    variables = _seed_variables(model)
    if states and len(states) != len(variables):
        raise UserError(
            f"the checkpoint has {len(states)} random generators, the model {len(variables)}: "
            f"it belongs to another model; start a new run"
        )
    for variable, state in zip(variables, states, strict=False):
        variable.assign(np.asarray(state, dtype=variable.dtype))


class Checkpointer(keras.callbacks.Callback):
    """Saves last/best models and state each epoch and stops after `patience` epochs without gain.

    Files are written to a temporary name and renamed, so a kill mid-save never leaves a
    truncated checkpoint; state.json is renamed last and names the epoch of last.keras.
    """

    def __init__(
        self,
        directory: Path,
        patience: int,
        state: TrainState,
        lr_patience: int = 0,
        lr_factor: float = 0.5,
    ):
        super().__init__()
        self.directory, self.patience, self.state = directory, patience, state
        self.lr_patience, self.lr_factor = lr_patience, lr_factor

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
            self._maybe_lower_learning_rate()
        self._save(LAST)
        state.rng = rng_states(self.model)
        if state.wait >= self.patience:
            state.stopped_early = True
        state.save(self.directory)

    def _maybe_lower_learning_rate(self) -> None:
        """Every `lr_patience` epochs without a better validation loss, the rate times
        `lr_factor`. It lives in the optimizer, so it is saved in last.keras and resumes."""
        if self.lr_patience and self.state.wait % self.lr_patience == 0:
            rate = self.model.optimizer.learning_rate
            rate.assign(rate * self.lr_factor)

    def _save(self, name: str) -> None:
        tmp = self.directory / f"tmp-{name}"
        self.model.save(tmp)
        os.replace(tmp, self.directory / name)


def fit(
    config: TrainConfig,
    manifest: Manifest,
    *,
    callbacks: tuple[keras.callbacks.Callback, ...] | list = (),
    work_dir: str | Path,
    start: Callable[[ModelSpec], keras.Model] | None = None,
) -> FitResult:
    """Train (or resume from `work_dir`'s checkpoints) and return the best model.

    `start(spec)`: the compiled model to train when there is no checkpoint yet (finetuning
    passes a parent's encoder under a new head); default a fresh seeded model with Adam.
    """
    spec = model_spec(config, manifest)
    checkpoints = Path(work_dir) / CHECKPOINT_DIR
    checkpoints.mkdir(parents=True, exist_ok=True)
    state = TrainState.load(checkpoints)
    # The data order of epoch e is drawn from (seed, e) as tf.data shuffle op seeds, and TF mixes
    # every op seed with its process-global seed. A fresh run sets that global seed when it builds
    # its model; a resume loads last.keras instead, so in a new process (after a crash) the global
    # seed was unset and every resumed epoch read its data in another order. Set it for both.
    keras.utils.set_random_seed(config.seed)
    with dtype_policy(config.mixed_precision):
        strategy = distribution_strategy()
        data = TrainingData(config, manifest)
        with strategy.scope():
            model = load_or_build(spec, config, checkpoints, state, start)
        # Keras' fit cannot drive a multi-worker strategy: that case has its own loop.
        if distributed.is_multi_worker(strategy):
            every_epoch = epoch_callbacks(config, state, checkpoints, callbacks)
            distributed.train_epochs(model, config, data, state, every_epoch)
        else:
            train_epochs(model, config, data, state, checkpoints, callbacks)
        if not (checkpoints / BEST).exists():
            raise UserError(
                f"no epoch gave a finite validation loss (history: {state.history.get('val_loss')}): "
                f"lower learning_rate or check the shards"
            )
        best = keras.models.load_model(checkpoints / BEST, compile=False)
    model_path = Path(work_dir) / "model.keras"
    best.save(model_path)  # loaded uncompiled: no optimizer state in the served model
    return FitResult(
        best_val_loss=state.best_val_loss,
        history=state.history,
        model=best,
        model_path=model_path,
        spec=spec,
        epochs_run=state.epoch,
        best_epoch=state.best_epoch,
        stopped_early=state.stopped_early,
        checkpoint_dir=checkpoints,
        campaign_weights=data.campaign_weights,
    )


def train_epochs(model, config, data: TrainingData, state, checkpoints, callbacks) -> None:
    """One `fit` call per epoch, each with that epoch's data order; our callbacks run first.

    Keras keeps the compiled train step between calls, so this costs no retracing.
    """
    all_callbacks = epoch_callbacks(config, state, checkpoints, callbacks)
    while state.epoch < config.epochs and not state.stopped_early:
        model.fit(
            data.train(state.epoch),
            validation_data=data.val,
            initial_epoch=state.epoch,
            epochs=state.epoch + 1,
            shuffle=False,  # the data are shuffled by make_dataset, per epoch
            callbacks=all_callbacks,
            verbose=0,
        )
        if model.stop_training:  # TerminateOnNaN or a caller's callback asked to stop
            break


def epoch_callbacks(config, state, checkpoints, callbacks) -> list[keras.callbacks.Callback]:
    """Checkpoints and early stopping first, then the NaN stop, the caller's, the progress."""
    return [
        Checkpointer(
            checkpoints, config.patience, state, config.lr_decay_patience, config.lr_decay_factor
        ),
        keras.callbacks.TerminateOnNaN(),
        *callbacks,
        *progress_callbacks(config.verbose, config.epochs),
    ]


def model_spec(config: TrainConfig, manifest: Manifest) -> ModelSpec:
    """The model for these shards: the manifest's schema and image size, the config's choices."""
    from gz_experiments.model_spec import MODEL_FIELDS
    from gz_experiments.schema import get_schema

    if config.schema and get_schema(config.schema) != manifest.schema:  # "": the shards' tree
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
        img_size=manifest.img_size,
        channels=1 if config.greyscale else manifest.channels,
        schema=manifest.schema,
        fits=manifest.fits,  # prediction stretches FITS flux exactly as these shards did
        **{name: getattr(config, name) for name in MODEL_FIELDS},
    )


def epoch_seed(seed: int, epoch: int) -> int:
    """The data-order seed of one epoch: the same for a run and for its resumed continuation."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class TrainingData:
    """The validation set once, and each epoch's training set in that epoch's own order."""

    def __init__(self, config: TrainConfig, manifest: Manifest):
        for split in ("train", "val"):
            if split not in manifest.split_names or manifest.n_galaxies(split) == 0:
                raise UserError(
                    f"the shards in {manifest.path} have no {split!r} galaxies: re-shard"
                )
        n_train = manifest.n_galaxies("train")
        if n_train < config.batch_size:
            raise UserError(
                f"batch_size={config.batch_size} is larger than the {n_train} training galaxies in "
                f"{manifest.path}: lower batch_size"
            )
        self.config, self.manifest = config, manifest
        # Training only: validation stays unweighted, so val_loss and early stopping keep
        # meaning "per galaxy", comparable with unbalanced runs (the per-question val losses show each campaign's).
        self.campaign_weights = (
            campaigns.balanced_weights(manifest.schema, manifest.votes("train"))
            if config.campaign_balance == "equal"
            else {}
        )
        self.greyscale = True if config.greyscale and manifest.channels == 3 else None
        # TFRecord datasets have unknown length; telling Keras gives it a progress bar target
        # and spares it from discovering the end (and warning about it).
        self.steps = config.steps_per_epoch or n_train // config.batch_size
        val = make_dataset(
            manifest, "val", batch_size=config.batch_size, training=False, greyscale=self.greyscale
        )
        n_val_batches = math.ceil(manifest.n_galaxies("val") / config.batch_size)
        self.val = val.apply(tf.data.experimental.assert_cardinality(n_val_batches))

    def train(self, epoch: int) -> tf.data.Dataset:
        config = self.config
        train = make_dataset(
            self.manifest,
            "train",
            batch_size=config.batch_size,
            training=True,
            greyscale=self.greyscale,
            seed=epoch_seed(config.seed, epoch),
            repeat=config.steps_per_epoch > 0,
            shuffle_buffer=config.shuffle_buffer,
        )
        if self.campaign_weights:
            train = train.map(campaign_weighting(self.manifest.schema, self.campaign_weights))
        if config.steps_per_epoch:
            train = train.take(config.steps_per_epoch)
        return train.apply(tf.data.experimental.assert_cardinality(self.steps))


def campaign_weighting(schema, weights: dict[str, float]):
    """(images, counts) -> (images, counts, loss weight): `campaigns.example_weights` in
    TensorFlow (a galaxy's weight is the mean of its campaigns'; 1 with no votes at all)."""
    member = tf.constant(campaigns.membership(schema))
    per_campaign = tf.constant([weights[c] for c in schema.campaigns], tf.float32)

    def weigh(images, counts):
        has = tf.cast(tf.matmul(tf.cast(counts, tf.float32), member) > 0, tf.float32)
        n = tf.reduce_sum(has, axis=-1)
        mean = tf.linalg.matvec(has, per_campaign) / tf.maximum(n, 1.0)
        return images, counts, tf.where(n > 0, mean, tf.ones_like(n))

    return weigh


def compile_model(model: keras.Model, config: TrainConfig, spec: ModelSpec, optimizer=None) -> None:
    """The loss and metrics of `spec`'s tree; Adam at `config.learning_rate` unless given."""
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(config.learning_rate),
        loss=loss_for(spec.schema),
        metrics=[per_question_metric(spec.schema), vote_fraction_mae(spec.schema)],
        # Keras' "auto": XLA with a GPU (and no tf.distribute strategy), never on CPU only.
        jit_compile={"auto": "auto", "true": True, "false": False}[config.jit_compile],
    )


def load_or_build(
    spec: ModelSpec, config: TrainConfig, checkpoints: Path, state: TrainState, start=None
) -> keras.Model:
    """last.keras (weights, optimizer and generator states) when resuming, else `start(spec)` or
    a seeded model."""
    if state.epoch > 0:
        if not (checkpoints / LAST).exists():
            raise UserError(f"{checkpoints / STATE} says epoch {state.epoch} but {LAST} is missing")
        model = keras.models.load_model(checkpoints / LAST)
        restore_rng_states(model, state.rng)
        return model
    if start is not None:
        return start(spec)
    model = build_model(spec, seed=config.seed)
    compile_model(model, config, spec)
    return model


def distribution_strategy() -> tf.distribute.Strategy:
    """Several workers (TF_CONFIG): the multi-worker strategy made at start-up (distributed.py);
    several GPUs: mirrored replicas; else the default."""
    multi_worker = distributed.start_multi_worker()
    if multi_worker is not None:
        return multi_worker
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


POLICIES = {"true": "mixed_float16", "false": "float32", "bfloat16": "mixed_bfloat16"}


def policy_name(mixed_precision: str) -> str:
    """The Keras dtype policy of a `mixed_precision` setting; "auto": mixed_float16 with a GPU."""
    if mixed_precision == "auto":
        return "mixed_float16" if gpu_visible() else "float32"
    return POLICIES[mixed_precision]


@contextmanager
def dtype_policy(mixed_precision: str):
    """The policy of `mixed_precision` for the duration of one fit (the head stays float32)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name(mixed_precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def progress_callbacks(verbose: int, epochs: int) -> list[keras.callbacks.Callback]:
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
    return {0: [], 1: [BriefProgressBar(epochs)]}.get(verbose, [EpochLine(epochs)])


def _totals(logs: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (logs or {}).items() if "/" not in k}


class BriefProgressBar(keras.callbacks.Callback):
    """A progress bar of the totals only (loss, val_loss, ...), through public Keras API: the
    callback hooks and `keras.utils.Progbar`, which Keras' own ProgbarLogger also drives."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs  # each fit call runs one epoch of the whole run
        self.bar: keras.utils.Progbar | None = None
        self.seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)
        # Values shown as they come: the logs already hold running means over the epoch.
        self.bar = keras.utils.Progbar(self.params.get("steps"), stateless_metrics=set())
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        self.bar.update(self.seen, list(_totals(logs).items()))

    def on_epoch_end(self, epoch, logs=None):
        if self.bar.target is None:  # an unknown-length dataset: now it is known
            self.bar.target = self.seen
        self.bar.update(self.bar.target, list(_totals(logs).items()), finalize=True)


class EpochLine(keras.callbacks.Callback):
    """One line per epoch, for logs and pipes."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        values = " - ".join(f"{k} {v:.4f}" for k, v in _totals(logs).items())
        print(f"epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - {values}", flush=True)
