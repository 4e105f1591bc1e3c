"""Hyperparameter search with Optuna (with tuning_storage and tuning_plots, the only modules
that import optuna).

    config = TuneConfig.resolve("debug", n_trials=3)
    with step_run("tune", loggable(config)) as run:
        tune(config, run.info.run_id)

Each trial samples crop fraction, final image size, dropout, learning rate and batch size, trains
with `experiment.run_training` inside its own nested MLflow child run, reports the validation
loss every epoch (so the pruner can stop it early) and returns the best validation loss (the
total Dirichlet-multinomial NLL), which the study minimises.

Several processes share one study through its storage: SQLite for one machine, PostgreSQL (or
Optuna's journal file on a shared disk) for several. Trial `n` is sampled with seed `seed + n`, so
a resumed study or a second worker never replays the parameters of trials already run, and a
fresh study with the same seed is reproducible.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import optuna

from gz_experiments.config import TrainConfig, TuneConfig
from gz_experiments.errors import UserError
from gz_experiments.tracking import trials as tracking
from gz_experiments.tuning_storage import mask_url, open_storage, resolve_storage

RUN_ID_ATTR = "mlflow_run_id"
FAIL_ATTR = "fail_reason"
SEARCHED = ("crop_fraction", "image_size", "dropout", "learning_rate", "batch_size")

# report(epoch, logs) is called after every epoch with logs["val_loss"]; the function returns
# the best validation loss. Tests pass a fast fake; the default trains for real.
Report = Callable[[int, dict[str, float]], None]
TrainFn = Callable[[TrainConfig, Report], float]

PRUNERS: dict[str, Callable[[TuneConfig], optuna.pruners.BasePruner]] = {
    "median": lambda c: optuna.pruners.MedianPruner(
        n_startup_trials=c.pruner_startup_trials, n_warmup_steps=c.pruner_warmup_epochs
    ),
    "percentile": lambda c: optuna.pruners.PercentilePruner(
        25.0, n_startup_trials=c.pruner_startup_trials, n_warmup_steps=c.pruner_warmup_epochs
    ),
    "hyperband": lambda c: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=c.epochs),
    "none": lambda c: optuna.pruners.NopPruner(),
}


class TrialFailed(Exception):
    """A trial crashed (out of memory, NaN loss, ...): the study records FAILED and goes on."""


# ---- search space ---------------------------------------------------------------------------


def suggest_params(trial: optuna.Trial, config: TuneConfig) -> dict[str, Any]:
    return {
        "crop_fraction": trial.suggest_float("crop_fraction", *config.crop_fraction_range),
        "image_size": trial.suggest_categorical("image_size", list(config.image_size_choices)),
        "dropout": trial.suggest_float("dropout", *config.dropout_range),
        "learning_rate": trial.suggest_float(
            "learning_rate", *config.learning_rate_range, log=True
        ),
        "batch_size": trial.suggest_categorical("batch_size", list(config.batch_size_choices)),
    }


def trial_train_config(config: TuneConfig, params: dict[str, Any]) -> TrainConfig:
    """The training config of one trial: the tune preset's training, with the sampled values."""
    return TrainConfig.resolve(
        config.preset,
        shard_dir=config.shard_dir,
        schema=config.schema,
        epochs=config.epochs,
        **params,
    )


def validate(config: TuneConfig) -> None:
    def check(ok: bool, message: str) -> None:
        if not ok:
            raise UserError(f"tune: {message}")

    check(config.pruner in PRUNERS, f"unknown pruner {config.pruner!r}: use one of {list(PRUNERS)}")
    check(config.n_trials >= 0 and config.n_workers >= 1, "need n_trials >= 0 and n_workers >= 1")
    check(config.epochs >= 1 and config.heartbeat_interval >= 1, "epochs/heartbeat must be >= 1")
    for name, low, high in (("crop_fraction", 0.0, 1.0), ("dropout", 0.0, 1.0)):
        lo, hi = getattr(config, f"{name}_range")
        check(low < lo <= hi <= high, f"{name}_range must be low,high within ({low}, {high}]")
    lo, hi = config.learning_rate_range
    check(0 < lo <= hi, "learning_rate_range must be low,high with 0 < low <= high")
    for name in ("image_size_choices", "batch_size_choices"):
        values = getattr(config, name)
        check(bool(values) and min(values) >= 1, f"{name} must be positive integers, e.g. 16,32")


# ---- sampler --------------------------------------------------------------------------------


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose randomness for trial n is seeded with `seed + n`.

    TPE keeps no state between trials besides its random generator (it re-reads the study's
    history each time), so a fresh seeded TPE per trial is still TPE. Trial numbers are unique
    across every process sharing the storage, hence no two trials draw the same random numbers,
    whether they come from a resumed run or from a parallel worker.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._current: tuple[int, optuna.samplers.TPESampler] | None = None

    def _tpe(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.TPESampler:
        if self._current is None or self._current[0] != trial.number:
            self._current = (
                trial.number,
                optuna.samplers.TPESampler(seed=self._seed + trial.number),
            )
        return self._current[1]

    def infer_relative_search_space(self, study, trial):
        return self._tpe(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._tpe(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._tpe(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._tpe(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe(trial).after_trial(study, trial, state, values)


# ---- study ----------------------------------------------------------------------------------


def load_study(config: TuneConfig, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study, or load it if it exists (re-running the same command resumes it)."""
    storage = open_storage(
        resolve_storage(config.storage), config.heartbeat_interval, _close_stale_trial_run
    )
    return optuna.create_study(
        storage=storage,
        study_name=config.study_name,
        sampler=TrialSeededSampler(config.seed),
        pruner=pruner or PRUNERS[config.pruner](config),
        direction="minimize",
        load_if_exists=True,
    )


def _close_stale_trial_run(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    tracking.mark_failed(trial.user_attrs.get(RUN_ID_ATTR))


class EpochReporter:
    """Reports each epoch's validation loss to the trial; raises TrialPruned when told to stop."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def __call__(self, epoch: int, logs: dict[str, float] | None) -> None:
        value = (logs or {}).get("val_loss")
        if value is None:
            raise TrialFailed("training reported no val_loss: a trial needs a validation split")
        # Steps count epochs from 1, as the MLflow metrics do.
        self.trial.report(float(value), epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} at val_loss {value:.4f}")


def _objective(
    trial: optuna.Trial, config: TuneConfig, parent_run_id: str, train_fn: TrainFn
) -> float:
    params = suggest_params(trial, config)
    train_config = trial_train_config(config, params)
    with tracking.trial_run(parent_run_id, trial.number, params, config.study_name) as run:
        trial.set_user_attr(RUN_ID_ATTR, run.run_id)
        try:
            value = float(train_fn(train_config, EpochReporter(trial)))
            if not math.isfinite(value):
                raise TrialFailed(f"best validation loss is {value}")
        except optuna.TrialPruned:
            run.state = "PRUNED"
            raise
        except Exception as exc:
            # A diverging learning rate or an out-of-memory batch size fails this trial only.
            reason = str(exc) if isinstance(exc, TrialFailed) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(FAIL_ATTR, reason)
            raise TrialFailed(reason) from exc
        run.state = "COMPLETE"
    return value


def run_worker(
    config: TuneConfig,
    parent_run_id: str,
    n_trials: int,
    train_fn: TrainFn | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> None:
    """Run `n_trials` trials of the shared study in this process."""
    study = load_study(config, pruner)
    objective = train_fn or train_trial
    study.optimize(
        lambda trial: _objective(trial, config, parent_run_id, objective),
        n_trials=n_trials,
        catch=(TrialFailed,),
        gc_after_trial=True,
    )


def split_trials(n_trials: int, n_workers: int) -> list[int]:
    """This invocation's n_trials shared out exactly over its workers."""
    return [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]


def visible_gpus() -> list[str]:
    """GPU ids without importing TensorFlow: CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def _worker_main(config, parent_run_id, n_trials, train_fn, pruner, gpu: str | None) -> None:
    # Set before TensorFlow is imported in this fresh (spawned) process.
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    tracking.detach_from_launcher_run()
    run_worker(config, parent_run_id, n_trials, train_fn, pruner)


def worker_gpus(n_workers: int) -> list[str | None]:
    """Worker i gets GPU i % k of the k visible ones (None: leave the devices alone)."""
    gpus = visible_gpus()
    return [gpus[i % len(gpus)] if gpus else None for i in range(n_workers)]


def run_workers(
    config: TuneConfig,
    parent_run_id: str,
    train_fn: TrainFn | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> None:
    """This invocation's trials: in this process, or in n_workers processes sharing the study."""
    counts = split_trials(config.n_trials, config.n_workers)
    if config.n_workers == 1:
        run_worker(config, parent_run_id, counts[0], train_fn, pruner)
        return
    context = multiprocessing.get_context("spawn")  # fork would copy TensorFlow/MLflow state
    workers = [
        context.Process(
            target=_worker_main,
            args=(config, parent_run_id, n, train_fn, pruner, gpu),
            name=f"tune-worker-{i}",
        )
        for i, (n, gpu) in enumerate(zip(counts, worker_gpus(config.n_workers), strict=True))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [w.name for w in workers if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"tune workers {failed} exited with an error (see their output above)")


# ---- the real objective ---------------------------------------------------------------------


def train_trial(train_config: TrainConfig, report: Report) -> float:
    """Train one trial for real, in the active (child) run; the Keras callback reports epochs."""
    import keras

    from gz_experiments.experiment import run_training

    callback = keras.callbacks.LambdaCallback(on_epoch_end=report)
    try:
        return run_training(train_config, callbacks=[callback]).best_val_loss
    finally:
        keras.backend.clear_session()  # a long study would otherwise pile up every trial's graph


# ---- the whole search -----------------------------------------------------------------------


def loggable(config: TuneConfig) -> TuneConfig:
    """The config as logged on the parent run: resolved storage, password masked."""
    return config.replace(storage=mask_url(resolve_storage(config.storage)))


def tune(
    config: TuneConfig,
    parent_run_id: str,
    train_fn: TrainFn | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> dict:
    """Run this invocation's trials, then summarise the whole study on the parent run.

    `train_fn` defaults to real training (`train_trial`) and `pruner` to `config.pruner`.
    """
    from gz_experiments.tuning_plots import close, study_figures, summarise

    validate(config)
    load_study(config)  # created once here, before workers race to create it
    run_workers(config, parent_run_id, train_fn, pruner)
    study = load_study(config)
    summary = summarise(study, mask_url(resolve_storage(config.storage)), RUN_ID_ATTR, FAIL_ATTR)
    figures, notes = study_figures(study)
    try:
        tracking.log_study(summary, figures, notes)
    finally:
        close(figures)
    if summary["best"] is None and summary["counts"]["FAILED"]:
        failed = [t for t in summary["trials"] if t["state"] == "FAILED"]
        raise UserError(
            f"no trial of study {config.study_name} completed; trial {failed[-1]['number']} "
            f"failed with: {failed[-1]['fail_reason']}"
        )
    if config.register_best:
        summary["registration"] = _register_best(config, summary)
    return summary


def _register_best(config: TuneConfig, summary: dict) -> dict:
    """Register the best trial's model; the `champion` alias moves only if it beats the holder."""
    from gz_experiments.tracking.registry import register_best
    from gz_experiments.tracking.runs import set_tags

    best = summary["best"]
    if best is None or not best["run_id"]:
        raise UserError("register_best: the study has no complete trial with a model to register")
    result = register_best("", config.model_name, run_id=best["run_id"])
    set_tags({"registered_version": result.version_uri, "alias_moved": result.alias_moved})
    return {
        "version": result.version_uri,
        "alias_moved": result.alias_moved,
        "reason": result.reason,
    }
