"""make_dataset: shapes, order, shuffling, greyscale on read, repeat, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gz_experiments.augment import Augmentation
from gz_experiments.errors import UserError
from gz_experiments.images import load_image
from gz_experiments.shards.dataset import make_dataset

from .test_shards import config_for, make_catalog, shard


@pytest.fixture(scope="module")
def colour_shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    catalog = make_catalog(folder, n=40)
    return shard(config_for(catalog, folder / "shards", greyscale=False))


def _ids(ds) -> list[str]:
    return [i.decode() for batch in ds.as_numpy_iterator() for i in batch[-1]]


def test_evaluation_order_is_the_manifest_order_with_a_short_last_batch(colour_shards):
    ds = make_dataset(colour_shards, "train", batch_size=5, training=False, with_ids=True)
    sizes = [len(batch[0]) for batch in ds.as_numpy_iterator()]
    assert sizes == [5, 5, 5, 5, 5, 3]
    expected = [i for f in colour_shards.files("train") for i in _ids_of(colour_shards, f.name)]
    assert _ids(ds) == expected


def _ids_of(manifest, file_name):
    catalog = pd.read_parquet(manifest.catalog_path("train"))
    return catalog.loc[catalog["shard_file"] == file_name, "id_str"].tolist()


def test_training_shuffles_seeded_and_drops_the_remainder(colour_shards):
    def ids(seed):
        ds = make_dataset(
            colour_shards, "train", batch_size=4, training=True, seed=seed, with_ids=True
        )
        return _ids(ds)

    first, same, other = ids(3), ids(3), ids(4)
    assert len(first) == 28 and len(set(first)) == 28  # 28 of 28: one full pass, 7 batches of 4
    assert first == same and first != other
    in_order = _ids(
        make_dataset(colour_shards, "train", batch_size=4, training=False, with_ids=True)
    )
    assert first != in_order and set(first) == set(in_order)


def test_shapes_dtypes_and_labels(colour_shards):
    images, counts = next(iter(make_dataset(colour_shards, "val", batch_size=2, training=False)))
    assert images.dtype == tf.float32 and images.shape == (2, 16, 16, 3)
    assert counts.dtype == tf.float32 and counts.shape == (2, len(colour_shards.label_cols))
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0


def test_greyscale_on_read_matches_greyscale_at_shard_time(colour_shards):
    ds = make_dataset(
        colour_shards, "test", batch_size=50, training=False, greyscale=True, with_ids=True
    )
    images, _, ids = next(iter(ds))
    catalog = pd.read_parquet(colour_shards.catalog_path("test")).set_index("id_str")
    files = catalog.loc[[i.decode() for i in ids.numpy()], "file_loc"]
    colour = np.stack([load_image(f, 16, greyscale=False) for f in files])
    at_shard_time = np.stack([load_image(f, 16, greyscale=True) for f in files])
    assert images.shape[-1] == 1
    # on read: the rounded mean of the stored (resized) bands, exactly
    np.testing.assert_allclose(
        images.numpy()[..., 0], np.rint(colour.mean(-1) * 255) / 255, atol=1e-6
    )
    # at shard time the mean comes before the resize: equal up to rounding and LANCZOS clipping
    # (a few levels on galaxies; these test images are pure noise, the worst case)
    difference = np.abs(images.numpy() - at_shard_time) * 255
    assert difference.max() <= 12 and difference.mean() < 1


def test_repeat_keeps_going_past_one_epoch(colour_shards):
    ds = make_dataset(colour_shards, "val", batch_size=2, training=True, seed=0, repeat=True)
    assert len(list(ds.take(10))) == 10  # val holds 4 galaxies: 2 batches per pass


def test_augmentation_maps_over_the_dataset(colour_shards):
    layer = Augmentation(0.75, 8, seed=0)
    ds = make_dataset(colour_shards, "train", batch_size=4, training=True, seed=0)
    images, _ = next(iter(ds.map(lambda x, y: (layer(x, training=True), y))))
    assert images.shape == (4, 8, 8, 3)


def test_errors_name_the_problem(colour_shards, tmp_path):
    with pytest.raises(UserError, match="no split 'predict'.*unlabelled"):
        make_dataset(colour_shards, "predict", batch_size=2, training=False)
    with pytest.raises(UserError, match="no manifest.json"):
        make_dataset(tmp_path, "train", batch_size=2, training=False)
    grey = shard(config_for(make_catalog(tmp_path, n=10), tmp_path / "grey"))
    with pytest.raises(UserError, match="greyscale.*--greyscale false"):
        make_dataset(grey, "train", batch_size=2, training=False, greyscale=False)
