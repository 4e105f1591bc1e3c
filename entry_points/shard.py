"""Write a catalog's galaxies as TFRecord shards with manifest.json, tracked as an MLflow run.

Exact commands (inside the venv):

    mlflow run . -e shard --env-manager local -P catalog=gz.csv -P shard_dir=shards/gzd5 -P img_size=300 -P schema=gzd5
    python -m entry_points.shard --preset debug --schema gz1 --class-column gz1_class_name --max-labelled 200 --catalog ../shared/data/gz1_sdss_64/catalog.csv --shard-dir shards/gz1-debug

Splits the shuffled labelled catalog 70/10/20 (seeded) into train/val/test; an unlabelled
catalog becomes the "predict" split. Re-running with the same inputs is a no-op, an interrupted
run resumes, different inputs need --overwrite. Unreadable images are listed in rejected.csv;
more than --max-rejected-fraction (default 0) of them fails the run (after logging them).

Images may be PNG, JPEG or FITS (.fits, .fits.gz, .fits.fz); FITS flux becomes pixels by the
fits_* settings (preset decals or simulator, bands in R,G,B order, scales, asinh stretch),
recorded in the manifest and the trained model's spec:

    mlflow run . -e shard --env-manager local -P catalog=cutouts.csv -P shard_dir=shards/fits -P fits_preset=decals -P fits_bands=z,r,g
"""

from gz_experiments.cli import summary_main
from gz_experiments.config import ShardConfig


def run(config: ShardConfig):
    # Imported here: decode workers re-import this module and should not pay for MLflow.
    from gz_experiments.shards.writer import check_inputs, run_shard
    from gz_experiments.tracking.runs import active_run_id, step_run
    from gz_experiments.tracking.shard import log_shard

    check_inputs(config)
    with step_run(config):
        result = run_shard(config, run_id=active_run_id())
        log_shard(result)
        result.check()  # too many rejects fails the run, once they are logged
    return result


def show(result) -> str:
    manifest = result.manifest
    return f"{manifest}; rejected {manifest.counts['rejected']} (see {manifest.rejected_path})"


main = summary_main(ShardConfig, run, __doc__, show=show)


if __name__ == "__main__":
    main()
