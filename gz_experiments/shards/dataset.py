"""Manifest -> tf.data pipeline of (images, vote counts[, ids]).

    ds = make_dataset(shard_dir, "train", batch_size=128, training=True, seed=0)

Training: file order shuffled, files interleaved, examples shuffled in a buffer, batches of exactly
`batch_size`. Otherwise: the manifest's order, every galaxy once, the last batch possibly smaller.
Images come out float32 in [0, 1] at the stored size; augmentation lives inside the model.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from gz_experiments.errors import UserError
from gz_experiments.shards.manifest import COUNTS_KEY, ID_KEY, IMAGE_KEY, Manifest, load_manifest

AUTOTUNE = tf.data.AUTOTUNE
# Files read at once while training: enough to mix shards, few enough to bound memory.
MAX_INTERLEAVE = 8


def as_manifest(manifest_or_dir: Manifest | str | Path) -> Manifest:
    if isinstance(manifest_or_dir, Manifest):
        return manifest_or_dir
    return load_manifest(manifest_or_dir)


def make_dataset(
    manifest_or_dir: Manifest | str | Path,
    split: str,
    *,
    batch_size: int,
    training: bool,
    greyscale: bool | None = None,
    seed: int | None = None,
    repeat: bool = False,
    with_ids: bool = False,
    shuffle_buffer: int = 1024,
) -> tf.data.Dataset:
    """Batches of (images (B,S,S,C) float32 [0,1], counts (B, n_answers) float32).

    with_ids=True adds the id_str batch as a third element; the unlabelled "predict" split
    yields (images, id_str). greyscale=None keeps the stored channels; True averages three
    stored bands into one (rounded like shard-time greyscale, so both give the same pixels).
    """
    manifest = as_manifest(manifest_or_dir)
    files = manifest.file_paths(split)
    channels = _output_channels(manifest, greyscale)
    labelled = split != "predict"
    if not files:
        raise UserError(f"{manifest.path}: split {split!r} has no galaxies; nothing to read")

    records = _records(files, training, seed, shuffle_buffer, repeat)
    parse = _parser(manifest, channels, labelled, with_ids)
    # A seed asks for reproducible order; unseeded training may take whichever example is ready.
    deterministic = not training or seed is not None
    ds = records.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=training, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def _output_channels(manifest: Manifest, greyscale: bool | None) -> int:
    if greyscale is None:
        return manifest.channels
    if greyscale:
        return 1
    if manifest.channels == 1:
        raise UserError(
            f"{manifest.path}: the shards are greyscale, colour was asked for; re-shard with "
            f"--greyscale false"
        )
    return 3


def _records(files, training: bool, seed, shuffle_buffer: int, repeat: bool) -> tf.data.Dataset:
    if not training:
        # One file after another, in manifest order: predictions line up with the catalog.
        ds = tf.data.TFRecordDataset(files, buffer_size=1 << 20)
        return ds.repeat() if repeat else ds
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=1 << 20),
        cycle_length=min(len(files), MAX_INTERLEAVE),
        num_parallel_calls=AUTOTUNE,
        deterministic=seed is not None,
    )
    ds = ds.shuffle(max(1, shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def _parser(manifest: Manifest, channels: int, labelled: bool, with_ids: bool):
    size, stored, encoding = manifest.img_size, manifest.channels, manifest.encoding
    features = {
        IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        ID_KEY: tf.io.FixedLenFeature([], tf.string),
    }
    if labelled:
        features[COUNTS_KEY] = tf.io.FixedLenFeature([len(manifest.label_cols)], tf.float32)

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, features)
        image = decode(example[IMAGE_KEY], size, stored, encoding)
        image = to_float(image, channels)
        if not labelled:
            return image, example[ID_KEY]
        if with_ids:
            return image, example[COUNTS_KEY], example[ID_KEY]
        return image, example[COUNTS_KEY]

    return parse


def decode(data, size: int, channels: int, encoding: str):
    """Encoded bytes -> uint8 (size, size, channels)."""
    if encoding == "png":
        image = tf.io.decode_png(data, channels=channels)
    elif encoding == "raw":
        image = tf.io.decode_raw(data, tf.uint8)
    else:
        raise UserError(f"unknown shard encoding {encoding!r}; expected png or raw")
    return tf.reshape(image, [size, size, channels])


def to_float(image, channels: int):
    """uint8 -> float32 [0, 1]; three bands -> one by the rounded plain mean, as at shard time."""
    pixels = tf.cast(image, tf.float32)
    if channels == 1 and image.shape[-1] == 3:
        pixels = tf.round(tf.reduce_mean(pixels, axis=-1, keepdims=True))
    return pixels / 255.0
