"""Hyperparameter search with Optuna (with tuning.storage and tuning.plots, the only modules
that import optuna). No MLflow here: where trials are recorded and how a trial trains are
given by the caller (the tune entry point passes tracking.tune.MlflowTrials and the train step).

    result = run_tune(config, trials=MlflowTrials(parent_run_id, ...), train_fn=training_trial(train))

Each trial samples crop fraction, final image size, dropout, learning rate and batch size, trains
(`train_fn`) inside its own trial record (an MLflow child run), reports the validation loss
every epoch (so the pruner can stop it early) and returns the best validation loss (the total
Dirichlet-multinomial NLL), which the study minimises.

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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from gz_experiments.config import TrainConfig, TuneConfig
from gz_experiments.errors import UserError
from gz_experiments.processes import die_with_parent
from gz_experiments.tuning.storage import mask_url, open_storage, resolve_storage

RUN_ID_ATTR = "mlflow_run_id"
FAIL_ATTR = "fail_reason"
WORKER_ATTR = "worker_pid"
SEARCHED = ("crop_fraction", "image_size", "dropout", "learning_rate", "batch_size")

# report(epoch, logs) is called after every epoch with logs["val_loss"]; the function returns
# the best validation loss. Tests pass a fast fake; the tune entry point trains for real.
Report = Callable[[int, dict[str, float]], None]
TrainFn = Callable[[TrainConfig, Report], float]


class TrialRecord(Protocol):
    run_id: str
    state: str  # set before leaving the record: COMPLETE, PRUNED or FAILED


class Trials(Protocol):
    """Where trials are recorded (MLflow child runs of the tune run: tracking.tune)."""

    def trial(self, number: int, params: dict[str, Any]) -> AbstractContextManager[TrialRecord]: ...

    def failed(self, run_id: str | None) -> None: ...  # close a dead worker's trial record


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


def load_study(
    config: TuneConfig,
    pruner: optuna.pruners.BasePruner | None = None,
    trials: Trials | None = None,
) -> optuna.Study:
    """Create the study, or load it if it exists (re-running the same command resumes it).

    A trial left RUNNING by a dead worker is failed by the storage's heartbeat check, and its
    record closed through `trials`.
    """

    def close_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trials is not None:
            trials.failed(trial.user_attrs.get(RUN_ID_ATTR))

    storage = open_storage(resolve_storage(config.storage), config.heartbeat_interval, close_stale)
    return optuna.create_study(
        storage=storage,
        study_name=config.study_name,
        sampler=TrialSeededSampler(config.seed),
        pruner=pruner or PRUNERS[config.pruner](config),
        direction="minimize",
        load_if_exists=True,
    )


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


@dataclass(frozen=True)
class Search:
    """What every worker of one invocation needs (picklable: workers are spawned processes)."""

    config: TuneConfig
    trials: Trials
    train_fn: TrainFn
    pruner: optuna.pruners.BasePruner | None = None


def _objective(trial: optuna.Trial, search: Search) -> float:
    params = suggest_params(trial, search.config)
    train_config = trial_train_config(search.config, params)
    with search.trials.trial(trial.number, params) as record:
        trial.set_user_attr(RUN_ID_ATTR, record.run_id)
        trial.set_user_attr(WORKER_ATTR, os.getpid())
        try:
            value = float(search.train_fn(train_config, EpochReporter(trial)))
            if not math.isfinite(value):
                raise TrialFailed(f"best validation loss is {value}")
        except optuna.TrialPruned:
            record.state = "PRUNED"
            raise
        except Exception as exc:
            # A diverging learning rate or an out-of-memory batch size fails this trial only.
            reason = str(exc) if isinstance(exc, TrialFailed) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(FAIL_ATTR, reason)
            raise TrialFailed(reason) from exc
        record.state = "COMPLETE"
    return value


def run_worker(search: Search, n_trials: int) -> None:
    """Run `n_trials` trials of the shared study in this process."""
    study = load_study(search.config, search.pruner, search.trials)
    study.optimize(
        lambda trial: _objective(trial, search),
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


def _worker_main(search: Search, n_trials: int, gpu: str | None) -> None:
    die_with_parent()  # a killed tune command must not leave workers training for hours
    # Set before TensorFlow is imported in this fresh (spawned) process.
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    run_worker(search, n_trials)


def worker_gpus(n_workers: int) -> list[str | None]:
    """Worker i gets GPU i % k of the k visible ones (None: leave the devices alone)."""
    gpus = visible_gpus()
    return [gpus[i % len(gpus)] if gpus else None for i in range(n_workers)]


def run_workers(search: Search) -> list[str]:
    """This invocation's trials, in this process or in n_workers processes sharing the study.

    A worker that dies (killed, out of memory) costs only its running trial, which is marked
    FAILED with the reason; the others go on. Returns one line per lost worker.
    """
    config = search.config
    counts = split_trials(config.n_trials, config.n_workers)
    if config.n_workers == 1:
        run_worker(search, counts[0])
        return []
    context = multiprocessing.get_context("spawn")  # fork would copy TensorFlow/MLflow state
    workers = [
        context.Process(target=_worker_main, args=(search, n, gpu), name=f"tune-worker-{i}")
        for i, (n, gpu) in enumerate(zip(counts, worker_gpus(config.n_workers), strict=True))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    lost = [w for w in workers if w.exitcode != 0]
    return [_fail_trials_of(w, search) for w in lost]


def _fail_trials_of(worker, search: Search) -> str:
    """Mark the trials a dead worker left RUNNING as FAILED (and close their records)."""
    study = load_study(search.config, search.pruner, search.trials)
    reason = f"worker {worker.name} (pid {worker.pid}) exited with code {worker.exitcode}"
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.user_attrs.get(WORKER_ATTR) != worker.pid:
            continue
        study._storage.set_trial_user_attr(trial._trial_id, FAIL_ATTR, reason)
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        search.trials.failed(trial.user_attrs.get(RUN_ID_ATTR))
        failed.append(trial.number)
    return f"{reason}; its running trial(s) {failed or 'none'} marked FAILED"


# ---- the whole search -----------------------------------------------------------------------


def loggable(config: TuneConfig) -> TuneConfig:
    """The config as logged on the parent run: resolved storage, password masked."""
    return config.replace(storage=mask_url(resolve_storage(config.storage)))


@dataclass
class TuneResult:
    config: TuneConfig
    summary: dict  # the whole study: every trial, counts, the best one (tuning.plots.summarise)
    figures: dict  # name -> matplotlib figure (close them after logging)
    notes: list[str]
    lost_workers: list[str]

    @property
    def best(self) -> dict | None:
        return self.summary["best"]

    def summary_text(self) -> str:
        lines = [f"worker lost: {line}" for line in self.lost_workers]
        best = self.best
        if best is None:
            lines.append(
                f"study {self.config.study_name}: no complete trial yet ({self.summary['counts']})"
            )
        else:
            lines.append(
                f"study {self.config.study_name}: best trial {best['number']} val_loss "
                f"{best['value']:.4f}\n  params {best['params']}  (MLflow run {best['run_id']})"
            )
        return "\n".join(lines)


def check_inputs(config: TuneConfig) -> None:
    """The storage must open before any run is opened (a wrong URL fails here)."""
    load_study(config)


def run_tune(
    config: TuneConfig,
    trials: Trials,
    train_fn: TrainFn,
    pruner: optuna.pruners.BasePruner | None = None,
) -> TuneResult:
    """Run this invocation's trials, then summarise the whole study.

    A study with failed trials and none complete is a UserError naming the last failure.
    """
    from gz_experiments.tuning.plots import study_figures, summarise

    load_study(config)  # created once here, before workers race to create it
    search = Search(config, trials, train_fn, pruner)
    lost = run_workers(search)
    study = load_study(config)
    summary = summarise(study, mask_url(resolve_storage(config.storage)), RUN_ID_ATTR, FAIL_ATTR)
    figures, notes = study_figures(study)
    result = TuneResult(config, summary, figures, notes, lost)
    return result


def check_outcome(result: TuneResult) -> None:
    """After logging: no complete trial while some failed is an error naming the last failure."""
    summary = result.summary
    if summary["best"] is None and summary["counts"]["FAILED"]:
        failed = [t for t in summary["trials"] if t["state"] == "FAILED"]
        raise UserError(
            f"no trial of study {result.config.study_name} completed; trial "
            f"{failed[-1]['number']} failed with: {failed[-1]['fail_reason']}"
        )
