"""Keras layers the imported encoders need beyond Keras' own: input standardisation, layer scale."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="gz_experiments")
class Standardize(keras.layers.Layer):
    """(x - mean) / std per channel, with mean and std stored as (non-trainable) weights: an
    encoder keeps the pixel statistics it was trained with through saving and finetuning."""

    def build(self, input_shape):
        channels = input_shape[-1]
        self.mean = self.add_weight(shape=(channels,), initializer="zeros", trainable=False)
        self.std = self.add_weight(shape=(channels,), initializer="ones", trainable=False)

    def call(self, inputs):
        return (inputs - keras.ops.cast(self.mean, inputs.dtype)) / keras.ops.cast(
            self.std, inputs.dtype
        )


@keras.saving.register_keras_serializable(package="gz_experiments")
class LayerScale(keras.layers.Layer):
    """x * gamma per channel: ConvNeXt's learned scale of each residual branch."""

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * keras.ops.cast(self.gamma, inputs.dtype)
