"""The finetune step as a library function: a trained model's encoder, a new Dirichlet head for
a new tree, new shards. No MLflow.

    parent, parent_spec = load_galaxy_model("models:/gz-decals@champion")     # (tracking)
    result = run_finetune(config, parent, parent_spec, load_manifest("shards/rings"),
                          work_dir="run", callbacks=[...])

Training is `training.fit` (the same loop, per-question metrics, checkpoints, exact resume and
early stopping as `train`), started from `models.with_new_head` instead of a fresh model:

- mode ``frozen``: only the head trains; the encoder, its BatchNorm statistics included, stays
  exactly the parent's;
- mode ``last_n_blocks``: the encoder's last `n_blocks` blocks train too (`models.ENCODER_BLOCKS`);
- mode ``all``: everything trains.

With `head_warmup_epochs` > 0 (modes last_n_blocks and all) the new head first trains alone for
that many epochs, the encoder frozen (its own checkpoints in ``<work_dir>/warmup``), and the
encoder's blocks unfreeze from the best warm-up model: a randomly initialised head otherwise
sends its largest gradients through the encoder in the first steps and moves the pretrained
features before the head is any use ("linear probe, then finetune"; Kumar et al. 2022).

The head learns at `learning_rate`, a trainable encoder block d blocks from the top at
`learning_rate * layer_decay**d` (`LayerwiseAdam`), so the features nearest the pixels move
least. The result is an ordinary galaxy model (augment -> encoder -> head, its own ModelSpec):
predict, evaluate, register and serve take it unchanged.

Images are read exactly as the parent reads them: the shards must be stored at the parent's
`img_size` with channels it can use; crop and image size are the parent's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import keras

from gz_experiments.config import FinetuneConfig, TrainConfig
from gz_experiments.config.training import FitConfig
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.models import (
    block_depths,
    build_model,
    encoder_blocks,
    freeze_encoder,
    lr_multipliers,
    with_new_head,
)
from gz_experiments.schema import get_schema
from gz_experiments.shards.manifest import Manifest, load_manifest
from gz_experiments.training.fit import FitResult, compile_model, fit
from gz_experiments.training.optimizers import LayerwiseAdam
from gz_experiments.training.run import TrainResult, baseline_val_loss

# The loop's fields a finetune passes to `fit`; the model's fields come from the parent.
LOOP_FIELDS = tuple(f.name for f in fields(FitConfig))


@dataclass(frozen=True)
class BlockInfo:
    """One encoder block of the finetuned model: what trained and at which learning rate."""

    name: str
    n_weights: int  # trainable + non-trainable scalars
    trainable: bool
    lr_multiplier: float  # 0 when frozen


@dataclass
class FinetuneResult:
    config: FinetuneConfig
    parent_spec: ModelSpec
    train: TrainResult  # the fit, its manifest and the image-blind baseline, as for `train`
    blocks: list[BlockInfo]
    warmup: FitResult | None = None  # the head-only epochs, when head_warmup_epochs > 0

    @property
    def best_val_loss(self) -> float:
        return self.train.best_val_loss

    @property
    def n_trainable_weights(self) -> int:
        model = self.train.fit.model
        return sum(int(v.numpy().size) for v in model.trainable_weights)

    def summary(self) -> str:
        trained = [b.name for b in self.blocks if b.trainable]
        encoder = f"encoder blocks {', '.join(trained)}" if trained else "encoder frozen"
        warmup = ""
        if self.warmup is not None:
            warmup = (f", after {self.warmup.epochs_run} head-only epochs (val loss "
                      f"{self.warmup.best_val_loss:.4f})")  # fmt: skip
        return f"mode {self.config.mode} ({encoder}{warmup}): {self.train.summary()}"


def training_config(config: FinetuneConfig, parent_spec: ModelSpec) -> TrainConfig:
    """The TrainConfig `fit` runs with: the finetune's own fields, the parent's model fields."""
    return TrainConfig(
        architecture=parent_spec.architecture,
        crop_fraction=parent_spec.crop_fraction,
        image_size=parent_spec.image_size,
        greyscale=parent_spec.greyscale,
        **{name: getattr(config, name) for name in LOOP_FIELDS},
    )


def check_inputs(config: FinetuneConfig) -> Manifest:
    """Before any model is loaded: a parent and complete shards are given."""
    if not config.model_uri:
        raise UserError(
            "no parent model: pass model_uri=models:/<name>@<alias>, models:/<name>/<version>, "
            "runs:/<run_id>/model or a local model folder"
        )
    if not config.shard_dir:
        raise UserError(
            "no shards: pass shard_dir=<shard folder of the new task> (mlflow run . -e shard)"
        )
    return load_manifest(config.shard_dir)


def check_parent(
    config: FinetuneConfig, parent: keras.Model, parent_spec: ModelSpec, manifest: Manifest
) -> None:
    """Before any run is opened: the parent reads these shards, the tree and blocks fit."""
    check_images(manifest, parent_spec)
    if config.schema and get_schema(config.schema) != manifest.schema:
        raise UserError(
            f"the shards in {manifest.path} use the {manifest.schema.name!r} tree but "
            f"schema={config.schema!r}: pass schema={manifest.schema.name} or leave it empty"
        )
    check_blocks(config, parent, parent_spec.architecture)


def check_images(manifest: Manifest, parent_spec: ModelSpec) -> None:
    """The shards must hold images as the parent reads them; say exactly what differs."""
    problems = []
    if manifest.img_size != parent_spec.img_size:
        problems.append(
            f"they store {manifest.img_size} px images, the parent reads {parent_spec.img_size} px "
            f"(then crops {parent_spec.crop_fraction:g} and resizes to {parent_spec.image_size})"
        )
    if manifest.channels == 1 and parent_spec.channels == 3:
        problems.append("they are greyscale, the parent reads colour")
    if problems:
        raise UserError(
            f"{manifest.path}: the parent model cannot read these shards: {'; '.join(problems)}. "
            f"Re-shard the new catalog with img_size={parent_spec.img_size} and greyscale="
            f"{str(parent_spec.greyscale).lower()}"
        )


def trainable_blocks(config: FinetuneConfig) -> int | None:
    """The `freeze_encoder` argument of a mode: 0 (frozen), n_blocks, or None (all)."""
    return {"frozen": 0, "last_n_blocks": config.n_blocks, "all": None}[config.mode]


def check_blocks(config: FinetuneConfig, parent: keras.Model, architecture: str) -> None:
    """Before any data is read: the encoder splits into blocks, at least n_blocks of them."""
    n = len(encoder_blocks(parent.get_layer("encoder"), architecture))
    if config.mode == "last_n_blocks" and config.n_blocks > n:
        raise UserError(
            f"n_blocks={config.n_blocks} but the parent's {architecture} encoder has {n} blocks: "
            f"use n_blocks <= {n}, or mode=all"
        )


def describe_blocks(model: keras.Model, architecture: str, decay: float) -> list[BlockInfo]:
    blocks = encoder_blocks(model.get_layer("encoder"), architecture)
    depths = block_depths(model, architecture)
    info = []
    for name, layers in blocks.items():
        trainable = any(layer.trainable_weights for layer in layers)
        size = sum(int(w.numpy().size) for layer in layers for w in layer.weights)
        factor = decay ** depths[name] if trainable else 0.0
        info.append(BlockInfo(name, size, trainable, factor))
    return info


def run_finetune(
    config: FinetuneConfig,
    parent_model: keras.Model,
    parent_spec: ModelSpec,
    manifest: Manifest,
    work_dir: str | Path,
    callbacks: tuple[keras.callbacks.Callback, ...] | list = (),
) -> FinetuneResult:
    """Finetune (or resume from the checkpoints in `work_dir`) and measure the baseline."""
    check_parent(config, parent_model, parent_spec, manifest)
    train_config = training_config(config, parent_spec)
    architecture = parent_spec.architecture
    warmup = None
    if config.head_warmup_epochs:
        warmup = warm_up_head(config, train_config, parent_model, architecture, manifest, work_dir)

    def start(spec: ModelSpec) -> keras.Model:
        if warmup is None:
            model = with_new_head(parent_model, spec, seed=config.seed)
        else:  # a copy of the best warm-up model (parent encoder, trained head), built afresh
            model = build_model(spec, seed=config.seed)  # in this strategy's scope, as above
            model.set_weights(warmup.model.get_weights())
        freeze_encoder(model, architecture, trainable_blocks(config))
        factors = lr_multipliers(model, architecture, config.layer_decay)
        optimizer = LayerwiseAdam(factors, learning_rate=config.learning_rate)
        compile_model(model, train_config, spec, optimizer=optimizer)
        return model

    fitted = fit(train_config, manifest, callbacks=callbacks, work_dir=work_dir, start=start)
    baseline = baseline_val_loss(manifest)
    train = TrainResult(train_config, manifest, fitted, baseline)
    blocks = describe_blocks(fitted.model, architecture, config.layer_decay)
    return FinetuneResult(config, parent_spec, train, blocks, warmup)


def warm_up_head(
    config: FinetuneConfig,
    train_config: TrainConfig,
    parent_model: keras.Model,
    architecture: str,
    manifest: Manifest,
    work_dir: str | Path,
) -> FitResult:
    """`head_warmup_epochs` epochs of the new head alone, resumable like any fit. Every warm-up
    epoch runs (no early stop): the point is a head that fits the frozen features."""
    warm = replace(
        train_config, epochs=config.head_warmup_epochs, patience=config.head_warmup_epochs
    )

    def start(spec: ModelSpec) -> keras.Model:
        model = with_new_head(parent_model, spec, seed=config.seed)
        freeze_encoder(model, architecture, 0)
        compile_model(model, warm, spec)
        return model

    return fit(warm, manifest, work_dir=Path(work_dir) / "warmup", start=start)
