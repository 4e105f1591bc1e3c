"""MLflow side of finetuning: the parent's lineage, the run (new or resumed) and its outcome.

    lineage = parent_lineage("models:/gz-decals@champion")   # pinned to a version, with its tags
    with finetune_run(config, lineage, parent_spec) as tracker:
        tracker.log_data(manifest)
        result = run_finetune(config, parent, parent_spec, manifest, tracker.work_dir,
                              [tracker.epoch_logger(images_per_epoch(config, manifest))])
        log_finetune(result)

A finetune run logs what a train run logs (tracking.train: per-epoch and per-question metrics,
checkpoints, plots, the best model as "model") plus its lineage, as tags:

- ``gz.parent_model_uri`` (as given) and ``gz.parent_model_source`` (pinned: an alias resolved to
  ``models:/<name>/<version>``; what a resume reloads), ``gz.parent_run_id``;
- for a registered parent ``gz.parent_model_name``, ``gz.parent_model_version``,
  ``gz.parent_description`` (the version's description, else the registered model's) and each
  version tag as ``gz.parent_tag.<key>`` (``gz.val_loss`` -> ``gz.parent_tag.val_loss``);
- ``gz.parent_schema``, ``gz.parent_architecture``; the run description says it all in a line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gz_experiments.config import FinetuneConfig
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import TAG_PREFIX, log_json, log_metrics, set_tags, step_run
from gz_experiments.tracking.train import (
    TrainTracker,
    download_checkpoints,
    log_train,
    log_train_config,
    logged_train_config,
    tag_launcher,
)

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.training.finetune import FinetuneResult

CONFIG_ARTIFACT = "finetune_config.yaml"
SOURCE_TAG = "parent_model_source"
MAX_TAG_LENGTH = 5000  # MLflow's limit on a tag value is 8000; descriptions are cut well before


@dataclass(frozen=True)
class Lineage:
    """Where a parent model comes from, as far as the tracking server knows."""

    uri: str  # as the user gave it
    source: str  # pinned: models:/<name>/<version>, runs:/<id>/<path>, or the local path
    run_id: str = ""
    name: str = ""
    version: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)  # the registered version's tags

    def tags_for(self, spec: ModelSpec) -> dict[str, str]:
        tags = {
            "parent_model_uri": self.uri,
            SOURCE_TAG: self.source,
            "parent_run_id": self.run_id,
            "parent_schema": spec.schema.name,
            "parent_architecture": spec.architecture,
        }
        if self.name:
            tags.update(parent_model_name=self.name, parent_model_version=self.version)
            tags["parent_description"] = self.description[:MAX_TAG_LENGTH]
        for key, value in self.tags.items():
            tags[f"parent_tag.{key.removeprefix(TAG_PREFIX)}"] = value[:MAX_TAG_LENGTH]
        return tags


def parent_lineage(model_uri: str) -> Lineage:
    """The parent's registry version (an alias resolved now), its run, description and tags."""
    if model_uri.startswith("models:/"):
        return _registered(model_uri)
    if model_uri.startswith("runs:/"):
        run_id = model_uri.removeprefix("runs:/").split("/")[0]
        return Lineage(model_uri, model_uri, run_id=run_id)
    return Lineage(model_uri, model_uri)


def _registered(model_uri: str) -> Lineage:
    client = MlflowClient()
    path = model_uri.removeprefix("models:/").strip("/")
    try:
        if "@" in path:
            name, alias = path.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = path.rsplit("/", 1)
            version = client.get_model_version(name, number)
        description = version.description or client.get_registered_model(name).description or ""
    except (MlflowException, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot resolve parent model {model_uri!r}: {first}") from None
    return Lineage(
        uri=model_uri,
        source=f"models:/{name}/{version.version}",
        run_id=version.run_id or "",
        name=name,
        version=str(version.version),
        description=description,
        tags=dict(version.tags),
    )


def run_description(lineage: Lineage, config: FinetuneConfig, spec: ModelSpec) -> str:
    parent = lineage.source + (f" (run {lineage.run_id})" if lineage.run_id else "")
    text = (
        f"Finetuned from {parent}, a {spec.architecture} on the {spec.schema.name!r} tree, "
        f"on the shards in {config.shard_dir}; mode {config.mode}."
    )
    if lineage.description:
        text += f"\n\nParent model: {lineage.description}"
    return text[:MAX_TAG_LENGTH]


def resumed(config: FinetuneConfig) -> tuple[FinetuneConfig, str]:
    """The resumed run's own config (other overrides ignored) and its pinned parent source."""
    run_id = config.resume_run_id
    logged = logged_train_config(run_id, CONFIG_ARTIFACT)
    known = {f.name for f in fields(FinetuneConfig)}
    values = {k: v for k, v in logged.items() if k in known}
    values.update(resume_run_id=run_id, verbose=config.verbose)
    source = MlflowClient().get_run(run_id).data.tags.get(TAG_PREFIX + SOURCE_TAG, "")
    if not source:
        raise UserError(f"run {run_id} has no {TAG_PREFIX}{SOURCE_TAG} tag: was it a finetune run?")
    return FinetuneConfig(**values), source


@contextmanager
def finetune_run(
    config: FinetuneConfig, lineage: Lineage, parent_spec: ModelSpec
) -> Iterator[TrainTracker]:
    """Open the finetune run (or reopen `config.resume_run_id` with its checkpoints fetched)."""
    logged = config.replace(resume_run_id="", verbose=-1)
    resume = config.resume_run_id or None
    launcher = os.environ.get("MLFLOW_RUN_ID")  # the run `mlflow run` opened, if any
    with (
        step_run(logged, run_id=resume, system_metrics=True) as run,
        tempfile.TemporaryDirectory(prefix="gz-finetune-") as folder,
    ):
        run_id = run.info.run_id
        if resume and launcher and launcher != run_id:
            tag_launcher(launcher, run_id)
        if not resume:
            set_tags({"architecture": parent_spec.architecture, **lineage.tags_for(parent_spec)})
            mlflow.set_tag("mlflow.note.content", run_description(lineage, config, parent_spec))
        log_train_config(logged.to_dict(), run_id, CONFIG_ARTIFACT)
        if resume:
            download_checkpoints(resume, folder)
        yield TrainTracker(run_id, Path(folder))


def log_finetune(result: FinetuneResult) -> None:
    """What `train` logs, plus the encoder blocks that trained and the parent's spec."""
    log_train(result.train)
    log_metrics(
        {
            "n_trainable_weights": result.n_trainable_weights,
            "n_trainable_blocks": sum(b.trainable for b in result.blocks),
        }
    )
    if result.warmup is not None:
        log_metrics(
            {
                "warmup/epochs_run": result.warmup.epochs_run,
                "warmup/best_val_loss": result.warmup.best_val_loss,
            }
        )
    log_json([asdict(b) for b in result.blocks], "finetune/blocks.json")
    log_json(result.parent_spec.to_dict(), "finetune/parent_model_spec.json")
    describe_outcome(result.summary())
