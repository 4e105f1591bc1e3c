"""Write a catalog's galaxies as TFRecord shards with manifest.json, tracked as an MLflow run.

Exact commands (inside the venv):

    mlflow run . -e shard -P catalog=gz.csv -P shard_dir=shards/gzd5 -P img_size=300 -P schema=gzd5 --env-manager local
    python -m entry_points.shard --preset debug --schema gz1 --max-labelled 200 --catalog ../shared/data/gz1_sdss_64/catalog.csv --shard-dir shards/gz1-debug

Splits the shuffled labelled catalog 70/10/20 (seeded) into train/val/test; an unlabelled
catalog becomes the "predict" split. Re-running with the same inputs is a no-op, an interrupted
run resumes, different inputs need --overwrite. Unreadable images are listed in rejected.csv;
more than --max-rejected-fraction (default 0) of them fails the run.
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import ShardConfig
from gz_experiments.manifest import record_run_id
from gz_experiments.shards import check_rejected, write_shards


@entry_point
def main(argv=None):
    config = parse_config(ShardConfig, argv, __doc__)
    # Imported here: decode workers re-import this module and should not pay for MLflow.
    from gz_experiments.tracking import runs

    with runs.step_run("shard", config, tags={"shard_dir": config.shard_dir}):
        manifest = write_shards(config, check=False)
        if manifest.files_written or not manifest.shard_run_id:
            manifest = record_run_id(manifest.shard_dir, runs.active_run_id())
        counts = {f"n_{split}": manifest.n_galaxies(split) for split in manifest.split_names}
        counts.update(n_written=manifest.counts["written"], n_rejected=manifest.counts["rejected"])
        runs.log_metrics(counts)
        runs.set_tags(
            {
                "manifest_sha256": manifest.sha256,
                "catalog_sha256": manifest.catalog_sha256,
                "shard_run_id": manifest.shard_run_id,
            }
        )
        runs.log_file(manifest.path, "shards")
        runs.log_file(manifest.rejected_path, "shards")
        check_rejected(manifest, config.max_rejected_fraction)
    print(f"{manifest}; rejected {manifest.counts['rejected']} (see {manifest.rejected_path})")


if __name__ == "__main__":
    main()
