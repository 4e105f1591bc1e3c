"""Training overrides shared by the real-data benchmarks: each flag left unset keeps the `real`
preset's value, so a benchmark's default run is exactly what users get from `-P preset=real`."""

from __future__ import annotations

import argparse

from gz_experiments.config import TrainConfig

# (flag, type): the TrainConfig fields a benchmark may override from its command line.
TRAIN_FLAGS = (
    ("architecture", str),
    ("image_size", int),
    ("crop_fraction", float),
    ("batch_size", int),
    ("epochs", int),
    ("patience", int),
    ("learning_rate", float),
    ("dropout", float),
    ("lr_decay_patience", int),
)


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    for name, kind in TRAIN_FLAGS:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=kind, default=None, help="default: the real preset's")


def real_train_config(args: argparse.Namespace, **fields) -> TrainConfig:
    """The `real` preset, then `fields`, then the flags the user set."""
    overrides = {n: getattr(args, n) for n, _ in TRAIN_FLAGS if getattr(args, n) is not None}
    return TrainConfig.resolve("real", **{**fields, **overrides})
