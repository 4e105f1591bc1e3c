"""The embedded default dataset's shards: one resolver, used by `train`, `tune` and `main`.

A preset's simulated catalog (simulate.default_dataset, cached) is sharded into
``<simulated data>/shards/<hash of the shard config>``. The hash covers every field that changes
the shards (not the folder itself, nor the number of decode workers), so the same config finds
the same (idempotent) shards from any step, and a changed preset never collides with old shards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gz_experiments.config import ShardConfig

# Fields that change where shards go but not what they hold.
NOT_HASHED = ("shard_dir", "n_workers", "overwrite", "preset")


def shard_dir_for(config: ShardConfig) -> Path:
    """The shard folder of `config`, beside its catalog."""
    content = {k: v for k, v in config.to_dict().items() if k not in NOT_HASHED}
    content["catalog"] = str(Path(config.catalog).resolve())
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]
    return Path(config.catalog).resolve().parent / "shards" / digest


def default_shard_config(preset: str, catalog: str | Path, **overrides) -> ShardConfig:
    """The shard config of the default dataset for a preset, with its folder filled in."""
    config = ShardConfig.resolve(preset, catalog=str(catalog), **overrides)
    return config.replace(shard_dir=str(shard_dir_for(config)))


def default_shards(preset: str, schema: str, greyscale: bool) -> Path:
    """Simulate (once) and shard (once) the preset's default dataset; the shard folder."""
    from gz_experiments.shards.writer import run_shard
    from gz_experiments.simulate import default_dataset

    config = default_shard_config(
        preset, default_dataset(preset), schema=schema, greyscale=greyscale
    )
    run_shard(config).check()
    return Path(config.shard_dir)
