"""MLflow side of training: a Keras callback logging each epoch, and fetching checkpoints to resume.

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

import time
from pathlib import Path
from typing import Any

import keras
import yaml
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gz_experiments.errors import UserError
from gz_experiments.tracking.runs import _metric_key, active_run_id

CHECKPOINT_ARTIFACTS = "checkpoints"
CONFIG_ARTIFACT = "train_config.yaml"
STATE_FILE = "state.json"  # uploaded last: it names the epoch the other files belong to


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
        entries = [Metric(_metric_key(k), v, now, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(entries), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=entries[i : i + 1000], synchronous=True)

    def upload_changed_checkpoints(self) -> None:
        files = sorted(self.checkpoint_dir.iterdir(), key=lambda p: (p.name == STATE_FILE, p.name))
        for path in files:
            if path.name.startswith("tmp-") or not path.is_file():
                continue
            mtime = path.stat().st_mtime_ns
            if self._uploaded.get(path.name) != mtime:
                self.client.log_artifact(self.run_id, str(path), CHECKPOINT_ARTIFACTS)
                self._uploaded[path.name] = mtime


def _metric_name(key: str) -> str:
    return key if key.startswith("val_") else f"train_{key}"


def download_checkpoints(run_id: str, work_dir: str | Path) -> Path:
    """The run's ``checkpoints/`` artifacts in ``<work_dir>/checkpoints``, ready for train.fit."""
    client = _existing_run_client(run_id)
    names = {f.path.split("/")[-1] for f in client.list_artifacts(run_id, CHECKPOINT_ARTIFACTS)}
    if STATE_FILE not in names:
        raise UserError(
            f"run {run_id} has no checkpoint to resume from (no {CHECKPOINT_ARTIFACTS}/"
            f"{STATE_FILE} artifact): it died before its first epoch ended; start a new run"
        )
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, CHECKPOINT_ARTIFACTS, str(work_dir)))


def logged_train_config(run_id: str) -> dict[str, Any]:
    """The resolved TrainConfig of a run to resume (its train_config.yaml artifact).

    A FINISHED run is refused: it trained to the end and logged its model already.
    """
    client = _existing_run_client(run_id)
    if client.get_run(run_id).info.status == "FINISHED":
        raise UserError(
            f"run {run_id} already finished; nothing to resume (start a new run to train more)"
        )
    try:
        path = client.download_artifacts(run_id, CONFIG_ARTIFACT)
    except MlflowException as exc:
        raise UserError(f"run {run_id} has no {CONFIG_ARTIFACT}: was it a train run?") from exc
    return yaml.safe_load(Path(path).read_text())


def log_train_config(config_dict: dict[str, Any], run_id: str | None = None) -> None:
    text = yaml.safe_dump(config_dict, sort_keys=False)
    MlflowClient().log_text(run_id or active_run_id(), text, CONFIG_ARTIFACT)


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
