"""A Keras weights file -> an encoder of this project's registry (e.g. ImageNet EfficientNetB0).

    model = keras.applications.EfficientNetB0(include_top=False, weights="imagenet")  # online
    model.save_weights("efficientnetb0_imagenet.weights.h5")                          # copy it
    load_keras_weights(encoder, Path("efficientnetb0_imagenet.weights.h5"))           # offline

`.weights.h5` (Keras 3) and legacy `.h5` load with `load_weights`; a `.keras` model gives its
weights in order (a galaxy model: its encoder's). Keras' EfficientNet takes 0-255 pixels; this
project's `efficientnetb0` encoder scales its [0, 1] images to that range first, so ImageNet
weights see what they were trained on.
"""

from __future__ import annotations

from pathlib import Path

import keras

from gz_experiments.errors import UserError


def load_keras_weights(encoder: keras.Model, path: Path, architecture: str) -> int:
    """Load `path` into `encoder` (weights in the same order); returns the number of tensors."""
    from gz_experiments.models import ARCHITECTURES  # models imports the encoders package

    try:
        if path.name.endswith(".keras"):
            loaded = keras.models.load_model(path, compile=False)
            source = loaded.get_layer("encoder") if "encoder" in layer_names(loaded) else loaded
            encoder.set_weights(source.get_weights())
        else:
            # Keras 3 weights files address layers by class, in order: load into the plain
            # twin (its BatchNorms unfused, as the file's were), then copy in the same order.
            twin = ARCHITECTURES[architecture](encoder.input_shape[1:])
            twin.load_weights(path)
            encoder.set_weights(twin.get_weights())
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path}: its weights do not fit the {architecture} encoder at "
            f"{encoder.input_shape[1]} px x{encoder.input_shape[-1]} ({first})"
        ) from None
    return len(encoder.weights)


def layer_names(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers}
