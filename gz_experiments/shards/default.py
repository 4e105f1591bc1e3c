"""The embedded default dataset's shards: one resolver, used by `train`, `tune` and `main`.

A preset's simulated catalog (simulate.default_dataset, cached) is sharded into
``<simulated data>/shards/<hash of the shard config>``. The hash covers every field that changes
the shards (not the folder itself, nor the number of decode workers), so the same config finds
the same (idempotent) shards from any step, and a changed preset never collides with old shards.
"""

from __future__ import annotations

import hashlib
import json
import sys
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
    from gz_experiments.config import SimulateConfig
    from gz_experiments.shards.manifest import MANIFEST_NAME
    from gz_experiments.shards.writer import run_shard
    from gz_experiments.simulate import default_dataset
    from gz_experiments.simulate.dataset import CATALOG, dataset_dir

    simulation = SimulateConfig.resolve(preset)
    catalog = dataset_dir(simulation) / CATALOG
    config = default_shard_config(preset, catalog, schema=schema, greyscale=greyscale)
    if not (Path(config.shard_dir) / MANIFEST_NAME).is_file():  # else minutes of silence
        print(f"first use of the {preset} preset's default dataset: simulating "
              f"{simulation.n_galaxies} galaxies and sharding them into {config.shard_dir} "
              f"(once; later runs reuse them)", file=sys.stderr, flush=True)  # fmt: skip
    default_dataset(preset)
    run_shard(config).check()
    return Path(config.shard_dir)
