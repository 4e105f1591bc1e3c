"""Model registry, the augment/encoder/head split, and saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gz_experiments.augment import Augmentation
from gz_experiments.errors import UserError
from gz_experiments.models import (
    ARCHITECTURES,
    MIN_IMAGE_SIZE,
    ModelSpec,
    build_model,
    split_model,
    summary_text,
)
from gz_experiments.schema import get_schema

SCHEMA = get_schema("gzd5")


def spec_for(architecture: str = "small_cnn", channels: int = 1, **changes) -> ModelSpec:
    image_size = max(16, MIN_IMAGE_SIZE.get(architecture, 1))
    values = dict(
        architecture=architecture,
        img_size=image_size + 8,
        channels=channels,
        crop_fraction=0.8,
        image_size=image_size,
        dropout=0.2,
        schema=SCHEMA,
    )
    values.update(changes)
    return ModelSpec(**values)


def images(spec: ModelSpec, n: int = 3, seed: int = 0) -> np.ndarray:
    shape = (n, spec.img_size, spec.img_size, spec.channels)
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_outputs_concentrations(architecture):
    spec = spec_for(architecture, channels=3 if architecture == "efficientnetb0" else 1)
    model = build_model(spec, seed=0)
    out = keras.ops.convert_to_numpy(model(images(spec), training=False))
    assert out.shape == (3, SCHEMA.n_answers)
    assert out.dtype == np.float32
    assert np.all(out > 1.0) and np.all(out < 101.0)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_encoder_and_head_reproduce_the_model_at_inference(architecture):
    spec = spec_for(architecture)
    model = build_model(spec, seed=1)
    x = images(spec, seed=1)
    augment, encoder, head = split_model(model)
    whole = keras.ops.convert_to_numpy(model(x, training=False))
    features = encoder(augment(x, training=False), training=False)
    parts = keras.ops.convert_to_numpy(head(features, training=False))
    np.testing.assert_allclose(parts, whole, rtol=1e-5)
    assert isinstance(augment, Augmentation)
    assert features.shape[0] == 3 and len(features.shape) == 2


def test_head_is_dropout_dense_concentrations_without_batchnorm():
    model = build_model(spec_for(dropout=0.3), seed=0)
    head = model.get_layer("head")
    kinds = [type(layer).__name__ for layer in head.layers]
    assert kinds == ["InputLayer", "Dropout", "Dense", "DirichletConcentrations"]
    assert head.get_layer("dropout").rate == 0.3
    # MC dropout: the head in training mode varies, at inference it does not.
    features = np.ones((4, head.input_shape[-1]), dtype=np.float32)
    a, b = (keras.ops.convert_to_numpy(head(features, training=True)) for _ in range(2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(head(features), head(features))


def test_seed_makes_weights_reproducible():
    spec = spec_for()
    first, second = build_model(spec, seed=7), build_model(spec, seed=7)
    for w1, w2 in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(w1, w2)


def test_saved_model_loads_and_predicts_the_same(tmp_path):
    spec = spec_for()
    model = build_model(spec, seed=3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    x = images(spec)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert {"augment", "encoder", "head"} <= {layer.name for layer in loaded.layers}


def test_head_stays_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model(spec_for(), seed=0)
        out = model(images(spec_for()), training=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.ops.convert_to_numpy(out).dtype == np.float32


def test_spec_round_trips_and_rejects_incomplete_dicts():
    spec = spec_for()
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.label_cols == SCHEMA.label_cols and spec.greyscale
    with pytest.raises(UserError, match="missing"):
        ModelSpec.from_dict({"architecture": "small_cnn"})


def test_unknown_architecture_and_too_small_images_are_user_errors():
    with pytest.raises(UserError, match="unknown architecture 'resnet9'.*small_cnn"):
        build_model(spec_for(architecture="resnet9"))
    with pytest.raises(UserError, match="image_size >= 32"):
        build_model(spec_for("efficientnetb0", image_size=16))


def test_summary_lists_the_nested_layers():
    text = summary_text(build_model(spec_for(), seed=0))
    assert "encoder" in text and "head" in text and "Total params" in text
