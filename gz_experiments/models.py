"""Galaxy Zoo models: augmentation -> encoder (by name) -> Dirichlet head, as one Keras model.

    spec = ModelSpec("efficientnetb0", img_size=300, channels=1, crop_fraction=0.75,
                     image_size=224, dropout=0.2, schema=get_schema("gzd5"))
    model = build_model(spec, seed=42)   # float32 [0,1] images -> concentrations (B, n_answers)

The model is three named layers, so prediction can run the encoder once and the dropout head
many times (MC dropout) and so a saved `.keras` file serves raw images:

- ``augment``: `augment.Augmentation` — random rotation/flips/crop while training, the same-scale
  central crop at inference, then resize to `image_size`;
- ``encoder``: a keras.Model from the `ARCHITECTURES` registry, image -> pooled features;
- ``head``: a keras.Model, features -> Dropout -> Dense(n_answers) -> 1 + 100 * sigmoid. No
  BatchNorm in the head, so running it in training mode for MC dropout changes nothing else. The
  head computes in float32 even under mixed precision (lgamma in the loss needs it).

Adding an architecture = one builder function `(input_shape) -> keras.Model` + one registry line.

For finetuning (`with_new_head`, `freeze_encoder`, `lr_multipliers`) an encoder splits into
blocks by `ENCODER_BLOCKS` (EfficientNet's stages; small_cnn's conv blocks): one more line there.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import keras

from gz_experiments.augment import Augmentation
from gz_experiments.encoders import convnext, efficientnet, resnet
from gz_experiments.errors import UserError
from gz_experiments.fused_batchnorm import fuse_batchnorm
from gz_experiments.losses import concentrations_from_logits
from gz_experiments.model_spec import ModelSpec

# ---- encoders: (input_shape) -> keras.Model mapping images to pooled features ----------------


def efficientnetb0(input_shape: tuple[int, int, int]) -> keras.Model:
    """EfficientNetB0 from scratch (weights=None: nothing is downloaded), global average pooled."""
    inputs = keras.Input(input_shape)
    # Keras' EfficientNet starts with Rescaling(1/255) for 0-255 images; ours are [0, 1], and a
    # 1/255 signal would sit below the stem BatchNorm's epsilon.
    scaled = keras.layers.Rescaling(255.0, name="to_uint8_range")(inputs)
    backbone = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_tensor=scaled, pooling="avg"
    )
    return keras.Model(inputs, backbone.output, name="encoder")


def small_cnn(input_shape: tuple[int, int, int]) -> keras.Model:
    """Four conv blocks, ~100k parameters: for tests, debugging and quick CPU runs."""
    inputs = keras.Input(input_shape)
    x = inputs
    for filters in (16, 32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D(2, padding="same")(x)
    features = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, features, name="encoder")


# timm architectures with a Keras twin that import_encoder fills from a checkpoint (encoders/).
TIMM_ARCHITECTURES = (*convnext.SIZES, *efficientnet.VARIANTS, "resnet50")

ARCHITECTURES: dict[str, Callable[[tuple[int, int, int]], keras.Model]] = {
    "efficientnetb0": efficientnetb0,
    "small_cnn": small_cnn,
    **convnext.builders(),
    **efficientnet.builders(),
    "resnet50": resnet.resnet50,
}

# keras.applications refuses smaller inputs for its ImageNet architectures; timm's downsample 32x.
MIN_IMAGE_SIZE = {"efficientnetb0": 32, **dict.fromkeys(TIMM_ARCHITECTURES, 32)}


# ---- head and full model ----------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="gz_experiments")
class DirichletConcentrations(keras.layers.Layer):
    """Logits -> Dirichlet concentrations 1 + 100 * sigmoid, in (1, 101)."""

    def call(self, logits):
        return concentrations_from_logits(logits)


def build_head(n_features: int, n_answers: int, dropout: float) -> keras.Model:
    features = keras.Input((n_features,))
    x = keras.layers.Dropout(dropout, name="dropout")(features)
    # float32 even under a mixed_float16 policy: 1 + 100*sigmoid and lgamma need the precision.
    logits = keras.layers.Dense(n_answers, dtype="float32", name="logits")(x)
    concentrations = DirichletConcentrations(dtype="float32", name="concentrations")(logits)
    return keras.Model(features, concentrations, name="head")


def build_encoder(architecture: str, image_size: int, channels: int) -> keras.Model:
    if architecture not in ARCHITECTURES:
        raise UserError(
            f"unknown architecture {architecture!r}: use one of {', '.join(sorted(ARCHITECTURES))}"
        )
    minimum = MIN_IMAGE_SIZE.get(architecture, 1)
    if image_size < minimum:
        raise UserError(
            f"architecture {architecture!r} needs image_size >= {minimum}, got {image_size}: "
            f"raise image_size or use architecture=small_cnn"
        )
    # Keras' BatchNorm is ~10 unfused ops a layer; the fused kernel made the CPU training step
    # 1.2x / 1.33x faster at 64 / 128 px (benchmarks/bench_levers.py, keras_bn), same numbers.
    return fuse_batchnorm(ARCHITECTURES[architecture]((image_size, image_size, channels)))


def build_model(spec: ModelSpec, seed: int | None = None) -> keras.Model:
    """The full model; `seed` seeds Keras' global RNG (weight init) and the augmentation."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input((spec.img_size, spec.img_size, spec.channels), name="image")
    augment = Augmentation(spec.crop_fraction, spec.image_size, seed=seed, name="augment")
    encoder = build_encoder(spec.architecture, spec.image_size, spec.channels)
    head = build_head(encoder.output.shape[-1], len(spec.label_cols), spec.dropout)
    outputs = head(encoder(augment(inputs)))
    return keras.Model(inputs, outputs, name=f"gz_{spec.architecture}")


def split_model(model: keras.Model) -> tuple[keras.Layer, keras.Model, keras.Model]:
    """(augment, encoder, head) of a model built by `build_model` (or loaded from .keras)."""
    return model.get_layer("augment"), model.get_layer("encoder"), model.get_layer("head")


# ---- transfer learning: a parent's encoder under a new head, encoder blocks, freezing ---------


def with_new_head(parent: keras.Model, spec: ModelSpec, seed: int | None = None) -> keras.Model:
    """A model for `spec` (a new tree, a new dropout) whose encoder holds `parent`'s weights.

    The whole model is built afresh (so its variables belong to the current distribution
    strategy and dtype policy) and the parent's encoder weights, BatchNorm statistics included,
    are copied in; augment has no weights and the head starts from a seeded initialisation.
    `spec` keeps the parent's architecture, image size and channels.
    """
    model = build_model(spec, seed=seed)
    try:
        model.get_layer("encoder").set_weights(parent.get_layer("encoder").get_weights())
    except ValueError as exc:
        raise UserError(
            f"the parent model's encoder does not match architecture {spec.architecture!r} at "
            f"{spec.image_size} px x{spec.channels} as this version builds it ({exc})"
        ) from None
    return model


def efficientnet_blocks(encoder: keras.Model) -> dict[str, list[keras.Layer]]:
    """stem, block1 ... block7, top: Keras names every EfficientNet layer after its stage."""
    blocks: dict[str, list[keras.Layer]] = {}
    for layer in encoder.layers:
        match = re.match(r"(stem|top|block\d+)[a-z]?_", layer.name)  # block6c_bn -> block6
        if match:
            blocks.setdefault(match.group(1), []).append(layer)
    return blocks


def conv_blocks(encoder: keras.Model) -> dict[str, list[keras.Layer]]:
    """One block per pooling stage (small_cnn: conv, BatchNorm, ReLU, max-pool); found by layer
    type, so models saved with any layer names split the same way."""
    blocks: list[list[keras.Layer]] = [[]]
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        blocks[-1].append(layer)
        if isinstance(layer, keras.layers.MaxPooling2D):
            blocks.append([])
    if len(blocks) > 1 and not any(layer.weights for layer in blocks[-1]):
        blocks[-2].extend(blocks.pop())  # the global pooling joins the last stage
    return {f"block{i + 1}": layers for i, layers in enumerate(blocks)}


# How each architecture's encoder splits into blocks, input to output (finetune's n_blocks).
ENCODER_BLOCKS: dict[str, Callable[[keras.Model], dict[str, list[keras.Layer]]]] = {
    "efficientnetb0": efficientnet_blocks,
    "small_cnn": conv_blocks,
    **dict.fromkeys(convnext.SIZES, convnext.convnext_blocks),
    **dict.fromkeys(efficientnet.VARIANTS, efficientnet.efficientnet_blocks),
    "resnet50": resnet.resnet_blocks,
}


def encoder_blocks(encoder: keras.Model, architecture: str) -> dict[str, list[keras.Layer]]:
    """The encoder's blocks that hold weights, input to output."""
    if architecture not in ENCODER_BLOCKS:
        raise UserError(f"architecture {architecture!r} has no block definition (ENCODER_BLOCKS)")
    blocks = ENCODER_BLOCKS[architecture](encoder)
    return {name: layers for name, layers in blocks.items() if any(x.weights for x in layers)}


def freeze_encoder(model: keras.Model, architecture: str, trainable_blocks: int | None) -> None:
    """Train only the encoder's last `trainable_blocks` blocks (0: none; None: all of it).

    A frozen BatchNorm runs in inference mode (Keras 3: `training and self.trainable`), so a
    frozen block's statistics stay the parent's too. Compile after calling this.
    """
    encoder = model.get_layer("encoder")
    encoder.trainable = trainable_blocks != 0
    if trainable_blocks in (0, None):
        return
    blocks = list(encoder_blocks(encoder, architecture).values())
    if trainable_blocks > len(blocks):
        raise UserError(
            f"n_blocks={trainable_blocks} but a {architecture} encoder has {len(blocks)} blocks: "
            f"use n_blocks <= {len(blocks)}, or mode=all"
        )
    unfrozen = {id(layer) for block in blocks[len(blocks) - trainable_blocks :] for layer in block}
    for layer in encoder.layers:
        layer.trainable = id(layer) in unfrozen


def block_depths(model: keras.Model, architecture: str) -> dict[str, int]:
    """Encoder block name -> its depth from the top (1 = the last block)."""
    names = list(encoder_blocks(model.get_layer("encoder"), architecture))
    return {name: len(names) - i for i, name in enumerate(names)}


def lr_multipliers(model: keras.Model, architecture: str, decay: float) -> list[float]:
    """Learning-rate factor of each of `model.trainable_variables`, in that order: 1 outside the
    encoder (the head), decay**d in the encoder block at depth d from the top."""
    blocks = encoder_blocks(model.get_layer("encoder"), architecture)
    depths = block_depths(model, architecture)
    factor = {
        id(variable): decay ** depths[name]
        for name, layers in blocks.items()
        for layer in layers
        for variable in layer.trainable_weights
    }
    return [factor.get(id(variable), 1.0) for variable in model.trainable_variables]


def summary_text(model: keras.Model) -> str:
    """`model.summary()` with nested encoder/head layers, as text (for a run artifact)."""
    lines: list[str] = []
    model.summary(expand_nested=True, print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)
