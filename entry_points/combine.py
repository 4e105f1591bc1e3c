r"""Combine catalogs of several Galaxy Zoo campaigns, each on its own tree, into one catalog.

The catalog to pretrain one model on every campaign at once (zoobot's GZ Evo, in miniature or at
scale). Exact commands (from the repo root, venv active):

    mlflow run . -e combine --env-manager local \
        -P catalogs=data/kaggle/catalog.parquet,gz1/catalog.csv,data/gzd5/catalog.parquet \
        -P trees=kaggle-gz2,gz1,gzd5 -P campaigns=gz2,gz1,gzd5 \
        -P class_columns=gz1=gz1_class_name -P fractional_votes=true -P out=data/pretrain
    mlflow run . -e shard --env-manager local -P catalog=data/pretrain/catalog.parquet \
        -P schema=data/pretrain/tree.yaml -P fractional_votes=true -P shard_dir=shards/pretrain
    mlflow run . -e train --env-manager local -P shard_dir=shards/pretrain \
        -P schema=data/pretrain/tree.yaml -P campaign_balance=equal

The tree is derived: each campaign's questions gain the suffix -<campaign> (so no two campaigns
share a column), and a galaxy has zero votes - no loss - for the questions its campaign did not
ask. Catalogs written by ingest carry their tree: `auto` in `trees` reads it from them.
`campaign_balance=equal` weights each campaign's galaxies so that every campaign counts the same
in the loss. Writes out/catalog.parquet, out/tree.yaml and out/combine.json; prints the shard
command. The trained model is an ordinary one: register, finetune and embed take it.
"""

from gz_experiments.cli import summary_main
from gz_experiments.config import CombineConfig


def run(config: CombineConfig):
    from gz_experiments.combine import run_combine
    from gz_experiments.tracking.combine import log_combine
    from gz_experiments.tracking.runs import step_run

    with step_run(config):
        result = run_combine(config)
        log_combine(result)
    return result


def show(result) -> str:
    """What was read, the derived tree, and the command that shards the catalog."""
    counts = ", ".join(f"{c} {n}" for c, n in result.galaxies_per_campaign.items())
    return (
        f"read {result.rows_read} rows from {len(result.campaigns)} catalogs: {result.n_galaxies} "
        f"galaxies (per campaign: {counts}) on the derived tree {result.tree_file} "
        f"({result.schema.n_questions} questions) in {result.catalog}\n"
        f"next: {result.shard_command()}"
    )


main = summary_main(CombineConfig, run, __doc__, show=show)


if __name__ == "__main__":
    main()
