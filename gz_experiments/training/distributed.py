"""Data-parallel training across worker processes: TF_CONFIG + MultiWorkerMirroredStrategy.

    start_multi_worker()          # first thing in the program, before TensorFlow runs anything
    ...                           # then `fit` as usual: it trains with `train_epochs` below

Start-up: TensorFlow configures collective ops once, when it first executes anything, so the
strategy must exist by then (else "Collective ops must be configured at program startup"). The
train and finetune entry points call `start_multi_worker` before any other work; a library
user with a multi-worker TF_CONFIG must do the same (`fit` says so in one line otherwise). The
strategy waits there until every worker of TF_CONFIG has joined.

The loop: Keras 3.15's `model.fit` cannot drive this strategy (keras-team/keras#20585: it fails
converting per-replica values), so `train_epochs` runs the epochs itself. Each step is the
model's own `train_step` under `strategy.run` (so the loss scaling over the global batch, the
optimizer, mixed precision and the per-question metrics are exactly `fit`'s), the metric totals
are summed over all workers at the end of the epoch, and the callbacks `fit` uses
(`fit.epoch_callbacks`: checkpoints, early stopping, learning-rate decay, NaN stop, the MLflow
logger, progress) get the same calls with the same logs. Every worker makes the same decisions
because every value they depend on is reduced over the whole cluster.

How the data are split (records, by global batch): `batch_size` is the global batch. Every worker
reads the same epoch-seeded stream that a single-process run reads, cut into the same global
batches, and trains on its own contiguous slice of each (worker i of n: rows i*B/n to
(i+1)*B/n). So a step sees exactly the galaxies a single-process step sees, for any number of
workers, and resume stays exact (the epoch's order depends on (seed, epoch) only). The cost:
each worker decodes every image of the batch and keeps 1/n of them; decoding (~10,000 img/s
here) is far cheaper than a train step (43-120 img/s), but with many workers on slow storage,
splitting by files would read less. Validation: worker i evaluates validation batches i, i+n,
..., and the metric totals are summed over workers, which gives the single-process val_loss.

What differs from a single process: the augmentation and dropout generators are per replica (each
replica draws the same numbers for its own slice), so losses match a single-process run closely
but not bit for bit (tests/test_multi_worker.py states the tolerance); XLA is not used (Keras' own
"auto" also turns it off under tf.distribute).
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import tensorflow as tf

from gz_experiments.errors import UserError
from gz_experiments.model_files import SEED_STATE_SUFFIX
from gz_experiments.shards.dataset import make_dataset

_started: tf.distribute.Strategy | None = None


def cluster() -> dict[str, Any]:
    """TF_CONFIG as a dict ({} when unset)."""
    text = os.environ.get("TF_CONFIG") or "{}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"TF_CONFIG is not valid JSON ({exc}): see README, Multi-worker") from None


def worker_count() -> int:
    """Training processes TF_CONFIG names (its chief and workers); 1 without TF_CONFIG."""
    jobs = cluster().get("cluster", {})
    return max(1, len(jobs.get("chief", [])) + len(jobs.get("worker", [])))


def is_chief() -> bool:
    """False on the non-chief workers of a multi-worker job: only the chief logs."""
    config = cluster()
    if not config:
        return True
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def start_multi_worker() -> tf.distribute.Strategy | None:
    """The multi-worker strategy when TF_CONFIG names several workers, created once; else None.

    Must run before TensorFlow executes anything; later it raises a UserError saying so.
    """
    global _started
    if _started is None and worker_count() > 1:
        try:
            _started = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:
            raise UserError(
                f"TF_CONFIG names {worker_count()} workers but TensorFlow already ran ({exc}): "
                f"call gz_experiments.training.distributed.start_multi_worker() at program start"
            ) from None
    return _started


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def train_epochs(model, config, data, state, epoch_callbacks) -> None:
    """`fit.train_epochs` for a multi-worker strategy: the same epochs and steps, with the
    callbacks `fit` builds (`fit.epoch_callbacks`, given by the caller: fit imports this module)."""
    strategy = model.distribute_strategy
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(
            f"batch_size={config.batch_size} (the global batch) must be a multiple of the "
            f"{replicas} replicas of the cluster: use e.g. batch_size="
            f"{max(replicas, config.batch_size // replicas * replicas)}"
        )
    callback_list = keras.callbacks.CallbackList(
        epoch_callbacks,
        model=model,
        epochs=config.epochs,
        steps=data.steps,
        verbose=0,
    )
    # tf.data combines each shuffle's seed with the global one, which a fresh model sets
    # (build_model seeds Keras) and a model loaded to resume does not: set it here, so that a
    # restarted job reads epoch e in the order an uninterrupted one does.
    tf.random.set_seed(config.seed)
    step, evaluate = train_step(model, strategy), validation(model, strategy, data)
    average_statistics = statistics_sync(model, strategy)
    model.stop_training = False
    callback_list.on_train_begin()
    while state.epoch < config.epochs and not state.stopped_early and not model.stop_training:
        epoch = state.epoch
        callback_list.on_epoch_begin(epoch)
        logs = run_epoch(model, strategy, step, data, epoch, callback_list)
        average_statistics()
        callback_list.on_test_begin()
        val_logs = evaluate()
        callback_list.on_test_end(val_logs)
        callback_list.on_epoch_end(epoch, {**logs, **{f"val_{k}": v for k, v in val_logs.items()}})
    callback_list.on_train_end()


def run_epoch(model, strategy, step, data, epoch: int, callback_list) -> dict[str, float]:
    """One epoch of global steps; the metric totals summed over all workers."""
    model.reset_metrics()
    iterator = iter(strategy.distribute_datasets_from_function(worker_slices(data, epoch)))
    for batch in range(data.steps):
        callback_list.on_train_batch_begin(batch)
        loss = float(step(next(iterator)))  # the same on every worker: reduced over all
        callback_list.on_train_batch_end(batch, {"loss": loss})
        if model.stop_training:  # TerminateOnNaN: every worker saw the same loss
            break
    return metric_results(model)


def worker_slices(data, epoch: int):
    """The dataset function of one epoch: this worker's slice of each global batch."""
    global_batch = data.config.batch_size

    def dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        rows = global_batch // context.num_input_pipelines
        start = context.input_pipeline_id * rows
        batches = data.train(
            epoch
        ).map(  # images, counts (and loss weights: campaign_balance)
            lambda *parts: tuple(part[start : start + rows] for part in parts)
        )
        # Several local replicas (GPUs) on this worker each take one per-replica batch in turn.
        per_replica = context.get_per_replica_batch_size(global_batch)
        return batches.unbatch().batch(per_replica, drop_remainder=True)

    return dataset


def train_step(model, strategy):
    @tf.function
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return strategy.reduce("MEAN", logs["loss"], axis=None)

    return step


def statistics_sync(model, strategy):
    """A function that sets each non-trainable weight (BatchNorm's moving statistics) to its mean
    over the replicas.

    Each replica updates the moving averages from its own slice, so they drift apart; their mean
    is the moving average of the replicas' mean batch statistics (the average is linear), which
    is what the whole batch gives for the means. Averaged once per epoch, before validation and
    checkpoints, so every worker evaluates and saves the same model.
    """
    variables = [v for v in model.non_trainable_variables if not v.path.endswith(SEED_STATE_SUFFIX)]

    def average() -> None:
        context = tf.distribute.get_replica_context()
        means = context.all_reduce("MEAN", [tf.identity(v.value) for v in variables])
        for variable, mean in zip(variables, means, strict=True):
            variable.assign(mean)

    @tf.function
    def sync() -> None:
        if variables:
            strategy.run(average)

    return sync


def validation(model, strategy, data):
    """A function that evaluates the validation split across workers and returns the logs."""
    config = data.config

    def dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batches = make_dataset(
            data.manifest,
            "val",
            batch_size=context.get_per_replica_batch_size(config.batch_size),
            training=False,
            greyscale=data.greyscale,
        )
        return batches.shard(context.num_input_pipelines, context.input_pipeline_id)

    def replica_step(images, counts):
        # A replica whose worker ran out of batches gets an empty one: it must add nothing (an
        # empty batch's mean loss is NaN, and NaN times a zero weight is still NaN).
        def test() -> tf.Tensor:
            model.test_step((images, counts))
            return tf.constant(True)

        return tf.cond(tf.shape(images)[0] > 0, test, lambda: tf.constant(False))

    @tf.function
    def step(batch):
        strategy.run(replica_step, args=batch)

    def evaluate() -> dict[str, float]:
        model.reset_metrics()
        iterator = iter(strategy.distribute_datasets_from_function(dataset))
        while True:
            batch = iterator.get_next_as_optional()  # agreed over all workers: none may stop early
            if not batch.has_value():
                return metric_results(model)
            step(batch.get_value())

    return evaluate


def metric_results(model) -> dict[str, float]:
    """The model's metrics as `fit` logs them (nested results flattened), summed over workers."""
    return _flat(model.get_metrics_result())


def _flat(results: dict[str, Any]) -> dict[str, float]:
    flat = {}
    for name, value in results.items():
        if isinstance(value, dict):
            flat.update(_flat(value))
        else:
            flat[name] = float(value)
    return flat
