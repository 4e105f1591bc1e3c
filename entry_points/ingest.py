r"""Turn public Galaxy Zoo release files into the project's standard catalog, as an MLflow run.

Exact commands (from the repo root, venv active):

    mlflow run . -e ingest --env-manager local -P sources=gz_decals_volunteers_5.csv \
        -P releases=gzd5 -P images=<folder holding dr5/> -P out=data/gzd5
    mlflow run . -e ingest --env-manager local \
        -P sources=gz_decals_volunteers_1_and_2.csv,gz_decals_volunteers_5.csv \
        -P releases=gzd12,gzd5 -P images=<folder> -P out=data/decals-all    # tree decals-all
    python -m entry_points.ingest --sources training_solutions_rev1.csv --releases kaggle-gz2 \
        --images images_training_rev1 --out data/kaggle --count-mode pseudo --n-volunteers 40

Releases: gzd5 (GZ DECaLS DR5: iauname, png_loc, {q}_{a} counts), gzd12 (GZD-1/2, its own tree,
suffixed -dr12), gz2 (Hart+16 gz2_hart16.csv + gz2_filename_mapping.csv), kaggle-gz2 (Kaggle's
cumulative vote fractions Class1.1...Class11.6), generic (a YAML mapping file), auto (from the
columns). Writes out/catalog.parquet, out/rejected.csv (source,row,id_str,reason) and
out/ingest.json; rows read = rows written + rows rejected, per source and in total. Prints the
shard command for the catalog.
"""

from gz_experiments.cli import summary_main
from gz_experiments.config import IngestConfig


def run(config: IngestConfig):
    from gz_experiments.ingest.run import run_ingest
    from gz_experiments.tracking.ingest import log_ingest
    from gz_experiments.tracking.runs import step_run

    with step_run(config):
        result = run_ingest(config)
        log_ingest(result)
    return result


def show(result) -> str:
    """What was read, written and rejected, and the command that shards the catalog."""
    fractional = " -P fractional_votes=true" if result.fractional_votes else ""
    return (
        f"read {result.rows_read} rows from {len(result.sources)} source(s): wrote "
        f"{result.rows_written}, rejected {result.rows_rejected} (see {result.rejected}); "
        f"{result.n_galaxies} galaxies on tree {result.tree} in {result.catalog}\n"
        f"next: mlflow run . -e shard --env-manager local -P catalog={result.catalog} "
        f"-P schema={result.tree}{fractional} -P shard_dir=<folder>"
    )


main = summary_main(IngestConfig, run, __doc__, show=show)


if __name__ == "__main__":
    main()
