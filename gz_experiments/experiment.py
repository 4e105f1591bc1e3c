"""One training experiment tracked in MLflow: data -> shards -> fit -> logged run and model.

    result = run_training(TrainConfig.resolve("debug"))

- With ``shard_dir`` empty, the embedded default dataset is simulated once
  (`simulate.default_dataset`, cached) and sharded once into
  ``<simulated data>/shards/<hash of the ShardConfig>`` (`shards.write_shards` is idempotent).
- With ``resume_run_id``, the run's own config and checkpoints are fetched and training continues
  in that run at the next epoch (`train.fit` restores the early-stopping state).
- Tuning calls this once per trial with extra Keras callbacks (pruning) and
  ``run_kwargs={"nested": True, "run_name": ..., "tags": {...}}`` (passed to `step_run`).

The tracking server is checked before any data work, so a wrong MLFLOW_TRACKING_URI fails fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import nullcontext
from dataclasses import fields
from pathlib import Path
from typing import Any

from gz_experiments.config import ShardConfig, TrainConfig
from gz_experiments.manifest import Manifest, load_manifest
from gz_experiments.models import summary_text
from gz_experiments.tracking.keras_callback import (
    MlflowEpochLogger,
    download_checkpoints,
    log_train_config,
    logged_train_config,
    tag_launcher,
)
from gz_experiments.tracking.models import log_galaxy_model
from gz_experiments.tracking.runs import (
    check_tracking_server,
    log_figure,
    log_file,
    log_json,
    log_metrics,
    log_text,
    set_tags,
    step_run,
)
from gz_experiments.train import CHECKPOINT_DIR, TrainResult, fit, is_chief
from gz_experiments.training_plots import loss_curves, per_question_curves


def run_training(
    config: TrainConfig,
    *,
    callbacks: tuple | list = (),
    run_kwargs: dict[str, Any] | None = None,
    work_dir: str | Path | None = None,
) -> TrainResult:
    """Train in an MLflow run and log everything; `result.run_id` names the run.

    `work_dir` keeps the checkpoints and `result.model_path`; by default a temporary folder that
    is removed on return (everything is in the run's artifacts by then).
    """
    check_tracking_server()
    verbose = config.verbose  # display only: not part of a resumed run's identity
    if config.resume_run_id:
        config = resumed_config(config)
    if not is_chief():  # a non-chief worker of a multi-worker job trains but does not log
        with _work_dir(work_dir) as folder:
            return fit(config, prepare_shards(config), callbacks=callbacks, work_dir=folder)
    run_kwargs = dict(run_kwargs or {})
    tags = run_kwargs.pop("tags", None) or {}
    if config.resume_run_id:
        run_kwargs["run_id"] = config.resume_run_id
    logged_config = config.replace(resume_run_id="")  # the same params on the resumed run
    with (
        step_run("train", logged_config, tags=tags, **run_kwargs) as run,
        _work_dir(work_dir) as folder,
    ):
        log_train_config(logged_config.to_dict(), run.info.run_id)
        result = tracked_fit(config.replace(verbose=verbose), run.info.run_id, callbacks, folder)
    return result


def tracked_fit(config: TrainConfig, run_id: str, callbacks, folder: str) -> TrainResult:
    """Inside the open run: data, checkpoints to resume from, fit with the logger, outcome."""
    launcher = os.environ.get("MLFLOW_RUN_ID")  # the run `mlflow run` opened, if any
    if config.resume_run_id and launcher and launcher != run_id:
        tag_launcher(launcher, run_id)
    manifest = prepare_shards(config)
    log_data(manifest, config)
    if config.resume_run_id:
        download_checkpoints(config.resume_run_id, folder)
    logger = MlflowEpochLogger(
        images_per_epoch=images_per_epoch(config, manifest),
        checkpoint_dir=Path(folder) / CHECKPOINT_DIR,
        run_id=run_id,
    )
    result = fit(config, manifest, callbacks=[logger, *callbacks], work_dir=folder)
    log_outcome(result)
    result.run_id = run_id
    return result


def resumed_config(config: TrainConfig) -> TrainConfig:
    """The resumed run's own config (other overrides are ignored), keeping the resume id."""
    logged = logged_train_config(config.resume_run_id)
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in logged.items() if k in known}
    values.update(resume_run_id=config.resume_run_id)
    return TrainConfig(**values)


def prepare_shards(config: TrainConfig) -> Manifest:
    """The user's shards, or the default dataset's, simulated and sharded on first use (cached)."""
    if config.shard_dir:
        return load_manifest(config.shard_dir)
    from gz_experiments.shards import write_shards  # writing shards is only needed here
    from gz_experiments.simulate import default_dataset

    catalog = Path(default_dataset(config.preset))
    shard_config = ShardConfig.resolve(
        config.preset, catalog=str(catalog), schema=config.schema, greyscale=config.greyscale
    )
    key = json.dumps(shard_config.replace(n_workers=0).to_dict(), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return write_shards(shard_config.replace(shard_dir=str(catalog.parent / "shards" / digest)))


def images_per_epoch(config: TrainConfig, manifest: Manifest) -> int:
    if config.steps_per_epoch:
        return config.steps_per_epoch * config.batch_size
    return manifest.n_galaxies("train") // config.batch_size * config.batch_size


def log_data(manifest: Manifest, config: TrainConfig) -> None:
    set_tags(
        {
            "schema": manifest.schema.name,
            "data_manifest_sha256": manifest.sha256,
            "shard_run_id": manifest.shard_run_id or "",
            "shard_dir": str(Path(manifest.path).parent),
            "architecture": config.architecture,
        }
    )
    log_file(manifest.path, "data")


def log_outcome(result: TrainResult) -> None:
    """Final metrics, curves, summary and the best model as an MLflow model named "model"."""
    log_metrics(
        {
            "best_val_loss": result.best_val_loss,
            "baseline_val_loss": result.baseline_val_loss,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
        }
    )
    log_text(summary_text(result.model), "model_summary.txt")
    log_json(result.spec.to_dict(), "model_spec.json")
    questions = [q.name for q in result.spec.get_schema().questions]
    log_figure(loss_curves(result.history, result.baseline_val_loss), "plots/loss.png")
    log_figure(per_question_curves(result.history, questions), "plots/per_question_loss.png")
    log_galaxy_model(
        result.model_path,
        result.spec,
        name="model",
        extra_metadata={
            "best_val_loss": result.best_val_loss,
            "baseline_val_loss": result.baseline_val_loss,
            "best_epoch": result.best_epoch,
        },
    )


def _work_dir(work_dir: str | Path | None):
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        return nullcontext(str(work_dir))
    return tempfile.TemporaryDirectory(prefix="gz-train-")
