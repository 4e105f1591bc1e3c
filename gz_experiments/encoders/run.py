"""The import_encoder step as a library function: a checkpoint on disk -> a saved galaxy model.

    result = run_import_encoder(config, work_dir="run")   # result.keras_path, result.spec

The model is an ordinary galaxy model (augment -> encoder -> head, with its ModelSpec) whose
encoder holds the imported weights and whose Dirichlet head is freshly initialised for
`config.schema`: `finetune` replaces that head and `embed` reads only the encoder, so both take
it as a parent. Its predictions mean nothing until it is finetuned. No MLflow here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from gz_experiments.config.encoders import ImportEncoderConfig
from gz_experiments.encoders.checkpoint import Checkpoint, locate, read_state
from gz_experiments.encoders.keras_weights import load_keras_weights
from gz_experiments.encoders.torch_weights import copy_state
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.models import ARCHITECTURES, TIMM_ARCHITECTURES, build_model
from gz_experiments.schema import get_schema

KERAS_FILE = "model.keras"


@dataclass
class ImportEncoderResult:
    config: ImportEncoderConfig
    spec: ModelSpec
    weights_file: Path  # the file the tensors came from
    weights_sha256: str
    n_tensors: int
    n_encoder_weights: int  # scalars
    keras_path: Path  # the saved galaxy model

    def summary(self) -> str:
        registered = f", registered as {self.config.name!r}" if self.config.name else ""
        return (
            f"imported {self.spec.architecture} ({self.n_tensors} tensors, "
            f"{self.n_encoder_weights:,} weights) from {self.weights_file}{registered}; head "
            f"untrained ({self.spec.schema.name!r} tree): finetune it, or embed with it"
        )


def architecture_of(config: ImportEncoderConfig, checkpoint: Checkpoint) -> str:
    """The architecture asked for, else config.json's; one this kind of file can fill."""
    name = config.architecture or str(checkpoint.config.get("architecture", ""))
    supported = TIMM_ARCHITECTURES if checkpoint.kind == "torch" else tuple(ARCHITECTURES)
    if not name:
        raise UserError(
            f"{checkpoint.weights}: no config.json says its architecture; pass architecture= one "
            f"of {', '.join(supported)}"
        )
    if name not in supported:
        raise UserError(
            f"architecture {name!r} cannot be imported from a {checkpoint.kind} checkpoint; "
            f"supported: {', '.join(supported)}"
        )
    return name


def check_request(config: ImportEncoderConfig) -> tuple[Checkpoint, str]:
    """Before any model is built or run opened: the checkpoint exists, its architecture is
    supported."""
    if not config.source:
        raise UserError("no checkpoint: pass source=<file or Hugging Face cache folder>")
    checkpoint = locate(config.source)
    return checkpoint, architecture_of(config, checkpoint)


def spec_for(config: ImportEncoderConfig, architecture: str) -> ModelSpec:
    return ModelSpec(
        architecture=architecture,
        img_size=config.img_size,
        channels=1 if config.greyscale else 3,
        crop_fraction=config.crop_fraction,
        image_size=config.image_size,
        dropout=config.dropout,
        schema=get_schema(config.schema),
    )


def fit_stem(state: dict[str, np.ndarray], encoder: keras.Model, channels: int, source) -> None:
    """Greyscale images into a colour checkpoint: sum the first convolution over R, G, B (the
    features of the grey image repeated in three channels). A grey checkpoint needs grey images."""
    first = next(layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D))
    key = f"{first.name}.weight"
    have = state[key].shape[1] if key in state else channels
    if have == channels:
        return
    if have == 3 and channels == 1:
        state[key] = state[key].sum(axis=1, keepdims=True)
        return
    raise UserError(
        f"{source}: a {have}-channel checkpoint; pass greyscale={str(have == 1).lower()}"
    )


def standardize(encoder: keras.Model, config: ImportEncoderConfig) -> None:
    """Store the checkpoint's pixel mean and std in the encoder's first layer."""
    if "standardize" not in {layer.name for layer in encoder.layers}:
        raise UserError(f"mean/std apply to timm encoders ({', '.join(TIMM_ARCHITECTURES)})")
    stats = [np.asarray(config.mean, np.float32), np.asarray(config.std, np.float32)]
    encoder.get_layer("standardize").set_weights(stats)


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def run_import_encoder(config: ImportEncoderConfig, work_dir: str | Path) -> ImportEncoderResult:
    """Read the checkpoint, build the galaxy model, copy the encoder's weights, save it."""
    checkpoint, architecture = check_request(config)
    spec = spec_for(config, architecture)
    model = build_model(spec, seed=config.seed)
    encoder = model.get_layer("encoder")
    if checkpoint.kind == "torch":
        state = read_state(checkpoint.weights)
        fit_stem(state, encoder, spec.channels, checkpoint.weights)
        n_tensors = copy_state(encoder, state, str(checkpoint.weights))
    else:
        n_tensors = load_keras_weights(encoder, checkpoint.weights, architecture)
    if config.mean:
        standardize(encoder, config)
    keras_path = Path(work_dir) / KERAS_FILE
    model.save(keras_path)
    return ImportEncoderResult(
        config=config,
        spec=spec,
        weights_file=checkpoint.weights,
        weights_sha256=sha256(checkpoint.weights),
        n_tensors=n_tensors,
        n_encoder_weights=int(sum(np.prod(w.shape) for w in encoder.weights)),
        keras_path=keras_path,
    )
