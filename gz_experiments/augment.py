"""Augmentation inside the model: rotate, flip, crop, resize — with one geometry for train and test.

Training: rotation by any angle (reflect fill), random horizontal and vertical flips, a random
square crop of side round(crop_fraction * S), resized to `image_size`. Inference: the *central*
crop of the same side, resized the same way, so a galaxy has the same apparent size in both.
(zoobot's Keras RandomCrop instead shrank the whole image at inference: test images were seen at
~1.34x a different scale than training crops.)

All four steps are one affine map from output pixels to input pixels, sampled once with bilinear
interpolation and reflect fill by TensorFlow's ImageProjectiveTransformV3. That op has no XLA
kernel, and one layer without one would turn `jit_compile` off for the whole model; so inside a
function that XLA compiles the same sampling runs as gathers and elementwise ops (`sample`),
which reproduce the op's arithmetic exactly (tests/test_augment.py: equal without XLA, within
float rounding with it). Outside XLA the op stays: measured here it is ~3x faster than the
gathers on CPU (300 -> 224 px, batch 32: 32 vs 95 ms). Randomness comes from a Keras
SeedGenerator hashed with integer ops (`uniform_draws`), so a fixed seed gives the same result
eagerly, in a compiled model, under XLA and inside `dataset.map(lambda x: layer(x, training=True))`.
At inference, a crop that needs no resizing (e.g. 85 -> 64, 171 -> 128, 299 -> 224 px) is a
shift by a whole or half pixel: `central_crop` does it with slices, same numbers, 4x faster.

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

    def call(self, inputs, training=None):
        batched = len(inputs.shape) == 4
        images = tf.cast(inputs if batched else inputs[None], tf.float32)
        side = images.shape[1]
        square = side is not None and side == images.shape[2]
        if not training and square and crop_side(side, self.crop_fraction) == self.image_size:
            out = tf.cast(central_crop(images, self.image_size), self.compute_dtype)
            return out if batched else out[0]
        transforms = self._transforms(tf.shape(images), bool(training))
        if compiling_for_xla():
            out = sample(images, transforms, self.image_size)
        else:
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
            draws = uniform_draws(self.seed_generator.next(), batch, 5)
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


GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: separates the two seed words before mixing


def uniform_draws(seed, batch, n: int):
    """(batch, n) floats in [0, 1) hashed from a (2,) seed and each draw's index.

    TensorFlow's stateless generators return other numbers under XLA than without it, even for
    the same key and counter (measured: StatelessRandomUniformV2, Philox); 32-bit integer
    arithmetic is the same everywhere, so a seed draws the same augmentations with and
    without jit_compile, on any device.
    """
    words = tf.bitcast(tf.cast(seed, tf.int32), tf.uint32)
    key = _mix(words[0] + _mix(words[1] + tf.constant(GOLDEN, tf.uint32)))
    index = tf.cast(tf.range(batch * n), tf.uint32)
    bits = _mix(key ^ _mix(index))
    top = tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32))  # 24 bits: exact in float32
    return tf.reshape(tf.cast(top, tf.float32) * 2.0**-24, [batch, n])


def _mix(h):
    """MurmurHash3's 32-bit finaliser: every input bit flips each output bit with p ~ 1/2."""
    for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = (h ^ tf.bitwise.right_shift(h, tf.constant(shift, tf.uint32))) * tf.constant(
            factor, tf.uint32
        )
    return h ^ tf.bitwise.right_shift(h, tf.constant(16, tf.uint32))


def central_crop(images, side: int):
    """The inference transform when the crop needs no resizing: a shift by (S - side) / 2, a
    whole or a half pixel. Slices (and for a half pixel the op's 2x2 mean, in its order of
    operations): the same numbers as ImageProjectiveTransformV3 at ~1/4 of its time."""
    start, half = divmod(images.shape[1] - side, 2)
    window = images[:, start : start + side + half, start : start + side + half]
    if not half:
        return window
    left, right = window[:, :, :-1], window[:, :, 1:]
    rows = 0.5 * left + 0.5 * right
    return 0.5 * rows[:, :-1] + 0.5 * rows[:, 1:]


def compiling_for_xla() -> bool:
    """True while tracing a function XLA compiles (`tf.function(jit_compile=True)`, Keras'
    `jit_compile`): tracing enters an XLA context, which only this internal helper reports."""
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def sample(images, transforms, image_size: int):
    """(B, S, S, C) images sampled at (B, 8) affine transforms -> (B, image_size, image_size, C).

    ImageProjectiveTransformV3(interpolation="BILINEAR", fill_mode="REFLECT") in ops that XLA
    compiles: output pixel (i, j) reads input coordinate (x, y) = M (j, i) + t, reflected into
    the image, and mixes its four neighbours with the same weights as that op.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    grid = tf.range(image_size, dtype=tf.float32)
    out_y, out_x = grid[None, :, None], grid[None, None, :]
    t = [transforms[:, k, None, None] for k in range(6)]
    x = _reflect(t[0] * out_x + t[1] * out_y + t[2], tf.cast(width, tf.float32))
    y = _reflect(t[3] * out_x + t[4] * out_y + t[5], tf.cast(height, tf.float32))
    x0, y0 = tf.floor(x), tf.floor(y)
    x1, y1 = x0 + 1.0, y0 + 1.0
    # Rows of all images stacked: pixel (b, r, c) is row b*H*W + r*W + c. A neighbour past the
    # last row/column has weight 0 (the coordinate was clamped to the edge); clamping its index
    # reads a finite pixel instead of the op's fill value 0, which changes nothing.
    flat = tf.reshape(images, [-1, images.shape[-1]])
    base = tf.range(batch)[:, None, None] * height * width

    def read(rows, cols):
        rows = tf.minimum(tf.cast(rows, tf.int32), height - 1)
        cols = tf.minimum(tf.cast(cols, tf.int32), width - 1)
        return tf.gather(flat, base + rows * width + cols)

    wx0, wx1 = (x1 - x)[..., None], (x - x0)[..., None]
    top = wx0 * read(y0, x0) + wx1 * read(y0, x1)
    bottom = wx0 * read(y1, x0) + wx1 * read(y1, x1)
    return (y1 - y)[..., None] * top + (y - y0)[..., None] * bottom


def _reflect(coord, length):
    """TensorFlow's REFLECT fill ([abcd] -> [dcba|abcd|dcba]), then clamped to [0, length-1]."""
    period = 2.0 * length
    low = coord + period * tf.floor(-coord / period)  # in (-period, 0] for coord < 0
    low = tf.where(low < -length, low + period, -low - 1.0)
    high = coord - period * tf.floor(coord / period)
    high = tf.where(high >= length, period - high - 1.0, high)
    mapped = tf.where(coord < 0, low, tf.where(coord > length - 1.0, high, coord))
    mapped = tf.where(length <= 1.0, tf.zeros_like(mapped), mapped)
    return tf.clip_by_value(mapped, 0.0, length - 1.0)
