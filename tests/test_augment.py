"""Augmentation: one geometry at train and test, reflect fill, seeded, eager == tf.data == saved."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gz_experiments.augment import Augmentation, crop_side


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


def test_a_model_holding_the_layer_falls_back_from_xla():
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), Augmentation(0.75, 8), keras.layers.Flatten()]
    )
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(loss="mse", jit_compile=True)
    assert model.jit_compile is False


def test_crop_fraction_must_be_a_fraction():
    with pytest.raises(ValueError, match="crop_fraction"):
        Augmentation(1.5, 16)
