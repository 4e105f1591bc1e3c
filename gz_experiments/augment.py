"""Augmentation inside the model: rotate, flip, crop, resize — with one geometry for train and test.

Training: rotation by any angle (reflect fill), random horizontal and vertical flips, a random
square crop of side round(crop_fraction * S), resized to `image_size`. Inference: the *central*
crop of the same side, resized the same way, so a galaxy has the same apparent size in both.
(zoobot's Keras RandomCrop instead shrank the whole image at inference: test images were seen at
~1.34x a different scale than training crops.)

All four steps are one affine map from output pixels to input pixels, sampled once with bilinear
interpolation by ImageProjectiveTransformV3. Randomness comes from stateless ops driven by a Keras
SeedGenerator, so a fixed seed gives the same result eagerly, in a compiled model and inside
`dataset.map(lambda x: layer(x, training=True))`.

Downscaling is bilinear without antialiasing (like tf.image.resize's default); the paper's
225 -> 224 is unaffected, large reductions (e.g. 72 -> 48) alias slightly, equally in train and test.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def crop_side(input_size: int, crop_fraction: float) -> int:
    return max(1, int(round(crop_fraction * input_size)))


@keras.saving.register_keras_serializable(package="gz_experiments")
class Augmentation(keras.layers.Layer):
    """(B, S, S, C) or (S, S, C) float images in [0, 1] -> (..., image_size, image_size, C)."""

    def __init__(
        self,
        crop_fraction: float,
        image_size: int | None = None,
        rotate: bool = True,
        flip: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        # Models saved before the sizes got one name each call it output_size.
        image_size = kwargs.pop("output_size", image_size)
        super().__init__(**kwargs)
        if not 0 < crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        self.crop_fraction = float(crop_fraction)
        self.image_size = int(image_size)
        self.rotate = bool(rotate)
        self.flip = bool(flip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # XLA has no kernel for ImageProjectiveTransformV3 (Keras' RandomRotation says the same):
        # a model holding this layer then runs without jit instead of failing to compile on GPU.
        self.supports_jit = False

    def call(self, inputs, training=None):
        batched = len(inputs.shape) == 4
        images = tf.cast(inputs if batched else inputs[None], tf.float32)
        transforms = self._transforms(tf.shape(images), bool(training))
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=tf.constant([self.image_size, self.image_size], tf.int32),
            fill_value=tf.constant(0.0),
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )
        out = tf.reshape(out, [-1, self.image_size, self.image_size, images.shape[-1]])
        out = tf.cast(out, self.compute_dtype)
        return out if batched else out[0]

    def _transforms(self, shape, training: bool):
        """(B, 8) projective transforms mapping output pixel indices to input pixel indices."""
        batch, size = shape[0], tf.cast(shape[1], tf.float32)
        crop = tf.cast(tf.round(self.crop_fraction * size), tf.float32)
        crop = tf.maximum(crop, 1.0)
        if training:
            seed = tf.cast(self.seed_generator.next(), tf.int32)
            draws = tf.random.stateless_uniform([batch, 5], seed=seed)
            angle = draws[:, 0] * 2 * math.pi if self.rotate else tf.zeros([batch])
            flips = tf.where(draws[:, 1:3] < 0.5, -1.0, 1.0) if self.flip else tf.ones([batch, 2])
            offset = draws[:, 3:5] * (size - crop)
        else:
            angle = tf.zeros([batch])
            flips = tf.ones([batch, 2])
            offset = tf.fill([batch, 2], (size - crop) / 2)
        return _affine(angle, flips, offset, crop, size, float(self.image_size))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.image_size, self.image_size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            crop_fraction=self.crop_fraction,
            image_size=self.image_size,
            rotate=self.rotate,
            flip=self.flip,
            seed=self.seed,
        )
        return config


def _affine(angle, flips, offset, crop, size, image_size: float):
    """Compose resize, crop, flip and rotation about the centre into one (B, 8) transform.

    In continuous coordinates (pixel i covers [i, i+1)):  crop = out * crop/image_size;
    rotated = crop + offset;  input = R(angle) F (rotated - S/2) + S/2;  index = coord - 0.5.
    """
    scale = crop / image_size
    cos, sin = tf.cos(angle), tf.sin(angle)
    fx, fy = flips[:, 0], flips[:, 1]
    # Linear part M = R @ diag(fx, fy) @ scale.
    m00, m01 = cos * fx * scale, -sin * fy * scale
    m10, m11 = sin * fx * scale, cos * fy * scale
    # Translation: input = M (out_idx + 0.5) + R F (offset - S/2) + S/2 - 0.5.
    dx, dy = offset[:, 0] - size / 2, offset[:, 1] - size / 2
    tx = cos * fx * dx - sin * fy * dy + size / 2 - 0.5 + 0.5 * (m00 + m01)
    ty = sin * fx * dx + cos * fy * dy + size / 2 - 0.5 + 0.5 * (m10 + m11)
    zeros = tf.zeros_like(angle)
    return tf.stack([m00, m01, tx, m10, m11, ty, zeros, zeros], axis=1)
