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
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from gz_experiments.augment import Augmentation
from gz_experiments.errors import UserError
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


ARCHITECTURES: dict[str, Callable[[tuple[int, int, int]], keras.Model]] = {
    "efficientnetb0": efficientnetb0,
    "small_cnn": small_cnn,
}

# keras.applications refuses smaller inputs for its ImageNet architectures.
MIN_IMAGE_SIZE = {"efficientnetb0": 32}


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
    return ARCHITECTURES[architecture]((image_size, image_size, channels))


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


def summary_text(model: keras.Model) -> str:
    """`model.summary()` with nested encoder/head layers, as text (for a run artifact)."""
    lines: list[str] = []
    model.summary(expand_nested=True, print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)
