"""Logging a shard result: counts, the manifest, rejected.csv and every split as a dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gz_experiments.tracking.datasets import log_shard_split
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_file, log_metrics, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.shards.writer import ShardResult


def log_shard(result: ShardResult) -> None:
    manifest = result.manifest
    counts = {f"n_{split}": manifest.n_galaxies(split) for split in manifest.split_names}
    counts.update(
        n_written=manifest.counts["written"],
        n_rejected=manifest.counts["rejected"],
        files_written=result.files_written,
    )
    # FITS galaxies whose NaN / inf / blank pixels were filled with the band's sky (shards.writer)
    counts.update({k: v for k, v in manifest.counts.items() if k.startswith("fits_filled_")})
    log_metrics(counts)
    set_tags(
        {
            "shard_dir": str(manifest.shard_dir),
            "manifest_sha256": manifest.sha256,
            "catalog_sha256": manifest.catalog_sha256,
            "shard_run_id": manifest.shard_run_id or "",
        }
    )
    log_file(manifest.path, "shards")
    log_file(manifest.rejected_path, "shards")
    for split in manifest.split_names:
        log_shard_split(manifest, split, context=f"shard/{split}")
    describe_outcome(
        f"{manifest.counts['written']} galaxies written ("
        + ", ".join(f"{s} {manifest.n_galaxies(s)}" for s in manifest.split_names)
        + f"), {manifest.counts['rejected']} rejected, into {manifest.shard_dir}"
    )
