"""Logging an imported encoder: the galaxy model, where its weights came from, its registration.

The run's model (`runs:/<id>/model`) is an ordinary galaxy model, so `finetune` and `embed` take
it, by run or, with `name`, as `models:/<name>/<version>` (and `@<alias>`). Tags: `gz.architecture`,
`gz.schema`, `gz.imported_from` (the file read), `gz.weights_sha256`, `gz.head=untrained`; the
registered version carries the same tags. Metrics: `n_tensors`, `n_encoder_weights`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlflow
from mlflow.tracking import MlflowClient

from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.models import log_galaxy_model
from gz_experiments.tracking.runs import TAG_PREFIX, log_metrics, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.encoders.run import ImportEncoderResult


def log_import_encoder(result: ImportEncoderResult) -> str:
    """Log (and register, if `config.name`) the model; returns the URI to finetune from."""
    tags = {
        "architecture": result.spec.architecture,
        "schema": result.spec.schema.name,
        "imported_from": str(result.weights_file),
        "weights_sha256": result.weights_sha256,
        "head": "untrained",
    }
    info = log_galaxy_model(result.keras_path, result.spec, extra_metadata=tags)
    set_tags(tags)
    log_metrics({"n_tensors": result.n_tensors, "n_encoder_weights": result.n_encoder_weights})
    describe_outcome(result.summary())
    config = result.config
    if not config.name:
        return info.model_uri
    version = mlflow.register_model(info.model_uri, config.name).version
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(config.name, version, TAG_PREFIX + key, value)
    if config.alias:
        client.set_registered_model_alias(config.name, config.alias, version)
    return f"models:/{config.name}/{version}"
