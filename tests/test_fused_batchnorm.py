"""FusedBatchNormalization: Keras' BatchNormalization's numbers through the fused kernel."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gz_experiments.fused_batchnorm import FusedBatchNormalization, fuse_batchnorm


def _pair(**kwargs):
    plain = keras.layers.BatchNormalization(momentum=0.9, **kwargs)
    fused = FusedBatchNormalization(momentum=0.9, **kwargs)
    x = np.random.default_rng(0).normal(2.0, 3.0, (6, 5, 5, 4)).astype("float32")
    plain.build(x.shape)
    fused.build(x.shape)
    gamma_beta = np.random.default_rng(1).normal(1.0, 0.3, (2, 4)).astype("float32")
    for layer in (plain, fused):
        if layer.scale:
            layer.gamma.assign(gamma_beta[0])
        if layer.center:
            layer.beta.assign(gamma_beta[1])
    return plain, fused, x


@pytest.mark.parametrize("kwargs", [{}, {"scale": False}, {"center": False}, {"epsilon": 1e-5}])
def test_training_output_gradients_and_moving_statistics_match_keras(kwargs):
    plain, fused, x = _pair(**kwargs)
    outputs, grads = [], []
    for layer in (plain, fused):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
            loss = tf.reduce_sum(y * tf.range(4, dtype=tf.float32))
        outputs.append(y.numpy())
        grads.append([g.numpy() for g in tape.gradient(loss, [xt, *layer.trainable_weights])])
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
    for g_fused, g_plain in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(g_fused, g_plain, atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5
    )
    # The biased batch variance, as Keras keeps it: 0.9 * 1 + 0.1 * var(x) per channel.
    expected = 0.9 + 0.1 * x.reshape(-1, 4).var(axis=0)
    np.testing.assert_allclose(fused.moving_variance.numpy(), expected, rtol=1e-5)


def test_inference_and_a_frozen_layer_use_the_moving_statistics():
    plain, fused, x = _pair()
    for layer in (plain, fused):
        layer.moving_mean.assign([1.0, -1.0, 0.5, 2.0])
        layer.moving_variance.assign([4.0, 1.0, 9.0, 0.25])
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)
    fused.trainable = False
    before = fused.moving_mean.numpy()
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=False), atol=1e-5)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), before)


def test_other_ranks_fall_back_to_keras():
    layer = FusedBatchNormalization()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    out = layer(x, training=True).numpy()
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)


def _cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 2))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="encoder")


def test_fuse_batchnorm_keeps_names_weights_and_outputs(tmp_path):
    model = _cnn()
    fused = fuse_batchnorm(model)
    assert isinstance(fused.get_layer("bn"), FusedBatchNormalization)
    assert fused.name == "encoder" and fused.get_layer("conv").name == "conv"
    x = np.random.default_rng(2).random((3, 12, 12, 2)).astype("float32")
    for training in (False, True):
        np.testing.assert_allclose(
            fused(x, training=training), model(x, training=training), atol=1e-5
        )
    fused.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("bn"), FusedBatchNormalization)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-5)


def test_it_compiles_with_xla():
    _, fused, x = _pair()
    step = tf.function(lambda t: fused(t, training=True), jit_compile=True)
    np.testing.assert_allclose(step(x).numpy().mean(axis=(0, 1, 2)), fused.beta.numpy(), atol=1e-4)
