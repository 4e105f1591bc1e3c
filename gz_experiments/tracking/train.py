"""MLflow side of training: the run (new or resumed), a Keras callback logging each epoch and
uploading checkpoints, and the logged outcome (metrics, plots, data inputs, the model).

    with train_run(config) as tracker:             # opens or resumes the run; checkpoints fetched
        manifest = training_data(config)
        tracker.log_data(manifest)
        result = run_train(config, manifest, work_dir=tracker.work_dir,
                           callbacks=[tracker.epoch_logger(images_per_epoch(config, manifest))])
        log_train(result)

`MlflowEpochLogger` logs, at step = epoch number (1, 2, ...):

- every Keras log value, training ones prefixed ``train_`` (``train_loss``,
  ``train_loss/<question>``, ``train_mae/<question>``) and validation ones as Keras names them
  (``val_loss``, ``val_loss/<question>``, ``val_mae/<question>``);
- ``learning_rate``, ``epoch_seconds`` (training + validation) and ``images_per_second``
  (training images / training seconds of the epoch);

then uploads the checkpoint files that changed this epoch (``checkpoints/``), ``state.json`` last,
so a run killed at any moment can be resumed from its artifacts (`download_checkpoints`).
It uses an explicit run id, so it also works inside nested runs (tuning trials).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import yaml
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gz_experiments.config import TrainConfig
from gz_experiments.errors import UserError
from gz_experiments.model_files import CHECKPOINT_DIR, STATE
from gz_experiments.shards.manifest import Manifest
from gz_experiments.tracking.datasets import log_shard_split
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.models import log_galaxy_model
from gz_experiments.tracking.runs import (
    active_run_id,
    log_figure,
    log_file,
    log_json,
    log_metrics,
    log_text,
    metric_key,
    set_tags,
    step_run,
)
from gz_experiments.training.plots import loss_curves, per_question_curves

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.training.run import TrainResult

CONFIG_ARTIFACT = "train_config.yaml"


class MlflowEpochLogger(keras.callbacks.Callback):
    """Per-epoch metrics and checkpoint uploads to one MLflow run."""

    def __init__(
        self,
        *,
        images_per_epoch: int,
        checkpoint_dir: str | Path | None = None,
        run_id: str | None = None,
    ):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.run_id = run_id or active_run_id()
        self.client = MlflowClient()
        self._uploaded: dict[str, int] = {}
        self._epoch_start = self._train_seconds = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start, self._train_seconds = time.perf_counter(), None

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        # Validation runs inside the epoch; images/s should count the training part only.
        if self._epoch_start is not None and self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.log_epoch(epoch + 1, self.epoch_metrics(logs or {}))
        if self.checkpoint_dir is not None:
            self.upload_changed_checkpoints()

    def epoch_metrics(self, logs: dict[str, Any]) -> dict[str, float]:
        metrics = {_metric_name(k): float(v) for k, v in logs.items()}
        seconds = time.perf_counter() - self._epoch_start
        train_seconds = self._train_seconds or seconds
        metrics["epoch_seconds"] = seconds
        metrics["images_per_second"] = self.images_per_epoch / train_seconds
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            metrics["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        return metrics

    def log_epoch(self, step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        entries = [Metric(metric_key(k), v, now, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(entries), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=entries[i : i + 1000], synchronous=True)

    def upload_changed_checkpoints(self) -> None:
        files = sorted(self.checkpoint_dir.iterdir(), key=lambda p: (p.name == STATE, p.name))
        for path in files:
            if path.name.startswith("tmp-") or not path.is_file():
                continue
            mtime = path.stat().st_mtime_ns
            if self._uploaded.get(path.name) != mtime:
                self.client.log_artifact(self.run_id, str(path), CHECKPOINT_DIR)
                self._uploaded[path.name] = mtime


def _metric_name(key: str) -> str:
    return key if key.startswith("val_") else f"train_{key}"


def download_checkpoints(run_id: str, work_dir: str | Path) -> Path:
    """The run's ``checkpoints/`` artifacts in ``<work_dir>/checkpoints``, ready for train.fit."""
    client = _existing_run_client(run_id)
    names = {f.path.split("/")[-1] for f in client.list_artifacts(run_id, CHECKPOINT_DIR)}
    if STATE not in names:
        raise UserError(
            f"run {run_id} has no checkpoint to resume from (no {CHECKPOINT_DIR}/"
            f"{STATE} artifact): it died before its first epoch ended; start a new run"
        )
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, CHECKPOINT_DIR, str(work_dir)))


def logged_train_config(run_id: str, artifact: str = CONFIG_ARTIFACT) -> dict[str, Any]:
    """The resolved config of a run to resume (its train_config.yaml, or `artifact`).

    A FINISHED run is refused: it trained to the end and logged its model already.
    """
    client = _existing_run_client(run_id)
    if client.get_run(run_id).info.status == "FINISHED":
        raise UserError(
            f"run {run_id} already finished; nothing to resume (start a new run to train more)"
        )
    try:
        path = client.download_artifacts(run_id, artifact)
    except MlflowException as exc:
        raise UserError(f"run {run_id} has no {artifact}: was it a train run?") from exc
    return yaml.safe_load(Path(path).read_text())


def log_train_config(
    config_dict: dict[str, Any], run_id: str | None = None, artifact: str = CONFIG_ARTIFACT
) -> None:
    text = yaml.safe_dump(config_dict, sort_keys=False)
    MlflowClient().log_text(run_id or active_run_id(), text, artifact)


def tag_launcher(launcher_run_id: str, resumed_run_id: str) -> None:
    """Point the run `mlflow run` opened for a resume at the run that actually continues."""
    client = MlflowClient()
    client.set_tag(launcher_run_id, "gz.resumed_run_id", resumed_run_id)
    client.set_tag(
        launcher_run_id,
        "mlflow.note.content",
        f"Resumed training continues in run {resumed_run_id}.",
    )


def _existing_run_client(run_id: str) -> MlflowClient:
    client = MlflowClient()
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise UserError(
            f"run {run_id!r} not found on the tracking server: check resume_run_id"
        ) from exc
    return client


def worker_scratch(config, work_dir: str | Path | None = None):
    """A non-chief worker's checkpoint folder, with the run's checkpoints when it resumes."""
    folder = _work_dir(work_dir)
    if config.resume_run_id:
        return _with_checkpoints(folder, config.resume_run_id)
    return folder


@contextmanager
def _with_checkpoints(folder, run_id: str):
    with folder as path:
        download_checkpoints(run_id, path)
        yield path


# ---- the training run -----------------------------------------------------------------------


@dataclass
class TrainTracker:
    """The open training run and its work folder (checkpoints of a resumed run already in it)."""

    run_id: str
    work_dir: Path

    def epoch_logger(self, images_per_epoch: int) -> MlflowEpochLogger:
        return MlflowEpochLogger(
            images_per_epoch=images_per_epoch,
            checkpoint_dir=self.work_dir / CHECKPOINT_DIR,
            run_id=self.run_id,
        )

    def log_data(self, manifest: Manifest) -> None:
        """The shards this run trains on: tags, the manifest, and both splits as inputs."""
        set_tags(
            {
                "schema": manifest.schema.name,
                "data_manifest_sha256": manifest.sha256,
                "shard_run_id": manifest.shard_run_id or "",
                "shard_dir": manifest.origin,
            }
        )
        log_file(manifest.path, "data")
        log_shard_split(manifest, "train", context="training")
        log_shard_split(manifest, "val", context="validation")


def resumed_config(config: TrainConfig) -> TrainConfig:
    """The resumed run's own config (other overrides are ignored), keeping the resume id."""
    logged = logged_train_config(config.resume_run_id)
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in logged.items() if k in known}
    values.update(resume_run_id=config.resume_run_id, verbose=config.verbose)
    return TrainConfig(**values)


@contextmanager
def train_run(
    config: TrainConfig, *, work_dir: str | Path | None = None, nested: bool = False
) -> Iterator[TrainTracker]:
    """Open the train run (or reopen `config.resume_run_id` with its checkpoints fetched).

    The logged params are the config without `resume_run_id` and `verbose` (display only), so a
    resumed run logs exactly what it logged first. `work_dir` keeps the checkpoints; by default
    a temporary folder removed on exit (everything is in the run's artifacts by then).
    """
    logged = config.replace(resume_run_id="", verbose=-1)
    resume = config.resume_run_id or None
    launcher = os.environ.get("MLFLOW_RUN_ID")  # the run `mlflow run` opened, if any
    with (
        step_run(logged, run_id=resume, nested=nested, system_metrics=True) as run,
        _work_dir(work_dir) as folder,
    ):
        run_id = run.info.run_id
        if resume and launcher and launcher != run_id:
            tag_launcher(launcher, run_id)
        set_tags({"architecture": config.architecture})
        log_train_config(logged.to_dict(), run_id)
        if resume:
            download_checkpoints(resume, folder)
        yield TrainTracker(run_id, Path(folder))


def _work_dir(work_dir: str | Path | None):
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        return nullcontext(str(work_dir))
    return tempfile.TemporaryDirectory(prefix="gz-train-")


def log_train(result: TrainResult) -> None:
    """Final metrics, curves, summary and the best model as an MLflow model named "model"."""
    from gz_experiments.models import summary_text

    f = result.fit
    log_metrics(
        {
            "best_val_loss": f.best_val_loss,
            "baseline_val_loss": result.baseline_val_loss,
            "best_epoch": f.best_epoch,
            "epochs_run": f.epochs_run,
            **{f"campaign/{c}/loss_weight": w for c, w in f.campaign_weights.items()},
        }
    )
    log_text(summary_text(f.model), "model_summary.txt")
    log_json(f.spec.to_dict(), "model_spec.json")
    questions = [q.name for q in f.spec.schema.questions]
    log_figure(loss_curves(f.history, result.baseline_val_loss), "plots/loss.png")
    log_figure(per_question_curves(f.history, questions), "plots/per_question_loss.png")
    log_galaxy_model(
        f.model_path,
        f.spec,
        name="model",
        extra_metadata={
            "best_val_loss": f.best_val_loss,
            "baseline_val_loss": result.baseline_val_loss,
            "best_epoch": f.best_epoch,
        },
    )
    describe_outcome(result.summary())
