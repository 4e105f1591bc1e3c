"""BatchNormalization through TensorFlow's fused kernel: one op forward and one backward.

Keras 3 normalises with `tf.nn.moments` + `tf.nn.batch_normalization`: about ten elementwise ops
and reductions per layer forward, more backward (profiled here: EfficientNetB0's 49 BatchNorms
were ~15 % of a CPU training step). `tf.nn.fused_batch_norm` is one oneDNN kernel on CPU and
one cuDNN kernel on GPU, and XLA compiles it. Same weights, same moving-statistics update and
the same numbers within float tolerance (tests/test_fused_batchnorm.py), so a model saved with
one layer class loads into the other.

`fuse_batchnorm(model)` rebuilds a functional model with every plain 4-D channels-last
BatchNormalization replaced (others, e.g. with renorm or synchronized, are left alone).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="gz_experiments")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by `tf.nn.fused_batch_norm` on NHWC input."""

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # statistics in float32, as Keras does
        gamma = self.gamma if self.scale else tf.ones_like(self.moving_mean)
        beta = self.beta if self.center else tf.zeros_like(self.moving_mean)
        gamma, beta = tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32)
        # Keras 3: a frozen BatchNorm (trainable=False) runs in inference mode.
        if training and self.trainable:
            out, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            # The fused kernel returns the Bessel-corrected variance; Keras keeps the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            variance = variance * tf.maximum(n - 1.0, 0.0) / n
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
        else:
            out, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32),
                epsilon=self.epsilon,
                is_training=False,
            )
        return tf.cast(out, self.compute_dtype)

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            rank == 4
            and self.axis in (-1, 3)
            and mask is None
            and not self.renorm
            and not self.synchronized
            and keras.backend.backend() == "tensorflow"
        )


def _swap(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fused twin of a plain BatchNormalization (same config and name), else a fresh copy."""
    if type(layer) is keras.layers.BatchNormalization and not layer.renorm:
        return FusedBatchNormalization.from_config(layer.get_config())
    return layer.__class__.from_config(layer.get_config())


def fuse_batchnorm(model: keras.Model) -> keras.Model:
    """The same functional model (layer names, structure) with fused BatchNorms; weights are
    copied, so a trained model keeps its outputs."""
    fused = keras.models.clone_model(model, clone_function=_swap)
    fused.set_weights(model.get_weights())
    return fused
