"""Augmentation: one geometry at train and test, reflect fill, seeded, eager == tf.data == saved."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gz_experiments.augment import (
    Augmentation,
    compiling_for_xla,
    crop_side,
    sample,
    uniform_draws,
)
from tests.conftest import shared_data


def _images(batch=4, size=24, channels=1, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((batch, size, size, channels)).astype("float32")


def _disk(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] + 0.5
    inside = np.hypot(yy - size / 2, xx - size / 2) < radius
    return inside.astype("float32")[None, ..., None]


def _radius(image: np.ndarray) -> float:
    return float(np.sqrt((np.asarray(image) > 0.5).sum() / np.pi))


def test_inference_is_the_identity_without_crop_or_resize():
    x = _images()
    np.testing.assert_array_equal(Augmentation(1.0, 24)(x, training=False), x)


def test_inference_is_the_central_crop_of_the_training_side():
    x = _images(size=32)
    side = crop_side(32, 0.5)
    out = Augmentation(0.5, side)(x, training=False)
    np.testing.assert_array_equal(out, x[:, 8:24, 8:24])


@pytest.mark.parametrize("crop_fraction, image_size", [(0.75, 48), (0.75, 32), (0.6, 40)])
def test_train_and_inference_show_galaxies_at_the_same_scale(crop_fraction, image_size):
    """zoobot's pitfall: inference shrank the whole image, so test disks looked smaller."""
    side = crop_side(64, crop_fraction)
    radius = min(12, side - 32 - 1)  # inside every possible crop window, so never cut off
    disk = _disk(64, radius)
    layer = Augmentation(crop_fraction, image_size, rotate=False, seed=3)
    expected = radius * image_size / side
    at_inference = _radius(layer(disk, training=False))
    in_training = [_radius(layer(disk, training=True)) for _ in range(4)]
    assert abs(at_inference - expected) < 1
    assert all(abs(r - at_inference) < 1 for r in in_training)


def test_rotation_uses_reflect_fill_so_a_flat_image_stays_flat():
    flat = np.full((4, 20, 20, 1), 0.7, "float32")
    out = Augmentation(1.0, 20, seed=0)(flat, training=True)
    np.testing.assert_allclose(out, 0.7, atol=1e-5)


def test_training_is_random_per_call_and_per_image_but_seeded():
    x = np.repeat(_images(batch=1), 4, axis=0)
    a, b = Augmentation(0.75, 16, seed=5), Augmentation(0.75, 16, seed=5)
    first, again = a(x, training=True).numpy(), b(x, training=True).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[0], first[1])  # same input, different augmentations
    assert not np.allclose(a(x, training=True), first)  # the next call draws new parameters


def test_flips_only_permute_pixels():
    x = _images(batch=8, size=16)
    out = Augmentation(1.0, 16, rotate=False, seed=1)(x, training=True).numpy()
    for before, after in zip(x, out, strict=True):
        options = [before, before[::-1], before[:, ::-1], before[::-1, ::-1]]
        assert any(np.allclose(after, o, atol=1e-6) for o in options)


def test_eager_and_tf_data_agree_for_a_fixed_seed():
    x = _images(batch=3, size=20, channels=3)
    eager = Augmentation(0.7, 12, seed=11)
    mapped = Augmentation(0.7, 12, seed=11)
    ds = tf.data.Dataset.from_tensors(x).repeat(2).map(lambda b: mapped(b, training=True))
    from_data = [b.numpy() for b in ds]
    np.testing.assert_allclose(from_data[0], eager(x, training=True), atol=1e-6)
    np.testing.assert_allclose(from_data[1], eager(x, training=True), atol=1e-6)


def test_unbatched_images_work_in_dataset_map():
    layer = Augmentation(0.75, 12, seed=0)
    ds = tf.data.Dataset.from_tensor_slices(_images(size=16)).map(lambda i: layer(i, training=True))
    shapes = {tuple(i.shape) for i in ds}
    assert shapes == {(12, 12, 1)}


def test_saved_model_keeps_the_layer_and_its_inference_output(tmp_path):
    model = keras.Sequential(
        [keras.Input((24, 24, 1)), Augmentation(0.75, 16, seed=2, name="augment")]
    )
    x = _images()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.get_layer("augment")
    assert isinstance(layer, Augmentation)
    assert (layer.crop_fraction, layer.image_size, layer.rotate, layer.flip) == (
        0.75,
        16,
        True,
        True,
    )
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert model.compute_output_shape((None, 24, 24, 1)) == (None, 16, 16, 1)


def _image_op(images, transforms, side):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=[side, side],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    ).numpy()


@pytest.mark.parametrize(
    "size, side, crop_fraction", [(24, 16, 0.75), (20, 20, 1.0), (85, 64, 0.75), (7, 30, 1.0)]
)
def test_the_xla_sampling_is_the_image_op_exactly(size, side, crop_fraction):
    x = _images(batch=4, size=size, channels=3)
    layer = Augmentation(crop_fraction, side, seed=1)
    for training in (True, False):
        transforms = layer._transforms(tf.shape(x), training)
        got = sample(tf.constant(x), transforms, side).numpy()
        np.testing.assert_array_equal(got, _image_op(x, transforms, side))


@pytest.mark.parametrize(
    "size, side, crop_fraction", [(85, 64, 0.75), (171, 128, 0.75), (32, 16, 0.5), (24, 24, 1.0)]
)
def test_an_unresized_central_crop_is_the_image_op_exactly(size, side, crop_fraction):
    x = _images(batch=2, size=size, channels=2)
    layer = Augmentation(crop_fraction, side)
    expected = _image_op(x, layer._transforms(tf.shape(x), False), side)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), expected)
    np.testing.assert_array_equal(layer(x[0], training=False).numpy(), expected[0])


def test_the_xla_sampling_reflects_far_outside_the_image_like_the_op():
    x = _images(batch=3, size=10)
    transforms = tf.constant(
        [
            [3.1, 0.4, -17.3, -0.2, 2.7, 25.1, 0, 0],  # scaled far past both edges
            [-1, 0, 9, 0, -1, 9, 0, 0],  # a half-turn
            [0.5, 0.5, -40, 0.3, -0.9, 33, 0, 0],  # several periods of the reflection away
        ],
        tf.float32,
    )
    got = sample(tf.constant(x), transforms, 12).numpy()
    np.testing.assert_array_equal(got, _image_op(x, transforms, 12))


def _xla_and_plain(make_layer, x, training):
    """The first call of two equal layers (one seed), one compiled by XLA, one not."""
    xla_layer, plain_layer = make_layer(), make_layer()
    xla = tf.function(lambda b: xla_layer(b, training=training), jit_compile=True)
    plain = tf.function(lambda b: plain_layer(b, training=training))
    return xla(x).numpy(), plain(x).numpy()


def test_under_xla_the_layer_compiles_and_gives_the_same_pixels():
    x = _images(batch=3, size=32, channels=1)
    seen = []
    layer = Augmentation(0.75, 20, seed=4)
    probe = tf.function(lambda b: seen.append(compiling_for_xla()) or layer(b), jit_compile=True)
    probe(x)
    assert seen == [True] and not compiling_for_xla()
    xla, plain = _xla_and_plain(lambda: layer, x, training=False)
    np.testing.assert_allclose(xla, plain, atol=1e-5)
    # Training: one seed draws the same rotations, flips and crops with and without XLA.
    xla, plain = _xla_and_plain(lambda: Augmentation(0.75, 20, seed=9), x, training=True)
    np.testing.assert_allclose(xla, plain, atol=1e-4)


def test_under_xla_real_galaxies_look_the_same():
    from PIL import Image

    folder = shared_data("gzd5_real_128")
    files = sorted((folder / "images").glob("*.png"))[:4]
    x = np.stack(
        [np.asarray(Image.open(f).convert("L"), "float32")[..., None] / 255 for f in files]
    )
    for training in (False, True):
        xla, plain = _xla_and_plain(lambda: Augmentation(0.75, 72, seed=3), x, training)
        assert xla.shape == (4, 72, 72, 1)
        np.testing.assert_allclose(xla, plain, atol=1e-4)


def test_a_model_holding_the_layer_compiles_with_xla():
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), Augmentation(0.75, 8), keras.layers.Flatten()]
    )
    model.compile(loss="mse", jit_compile=True)
    assert model.jit_compile is True


def test_crop_fraction_must_be_a_fraction():
    with pytest.raises(ValueError, match="crop_fraction"):
        Augmentation(1.5, 16)


def test_uniform_draws_are_uniform_seeded_and_the_same_under_xla():
    seed = tf.constant([7, 3], tf.int64)
    draws = uniform_draws(seed, 2000, 5).numpy()
    assert draws.shape == (2000, 5) and draws.min() >= 0 and draws.max() < 1
    assert abs(draws.mean() - 0.5) < 0.01 and abs(draws.var() - 1 / 12) < 0.005
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < 0.05
    xla = tf.function(lambda s: uniform_draws(s, 2000, 5), jit_compile=True)(seed).numpy()
    np.testing.assert_array_equal(xla, draws)
    other = uniform_draws(tf.constant([7, 4], tf.int64), 2000, 5).numpy()
    assert not np.isclose(other, draws).any(axis=1).all()
