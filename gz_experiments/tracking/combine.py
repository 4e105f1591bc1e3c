"""Logging a combine result: each catalog's hash and rows, the derived tree, and the catalog as
the run's dataset (so the shard and train runs downstream show where their galaxies came from)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from gz_experiments.tracking.datasets import log_catalog
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_file, log_metrics, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.combine import CombineResult


def log_combine(result: CombineResult) -> None:
    metrics = {"rows_read": result.rows_read, "n_galaxies": result.n_galaxies}
    tags = {"tree": result.schema.name, "tree_file": str(result.tree_file),
            "catalog": str(result.catalog)}  # fmt: skip
    for c in result.campaigns:
        metrics[f"campaign/{c.campaign}/rows_read"] = c.rows_read
        metrics[f"campaign/{c.campaign}/n_galaxies"] = result.galaxies_per_campaign[c.campaign]
        tags.update({f"campaign.{c.campaign}.path": c.path, f"campaign.{c.campaign}.sha256": c.sha256,
                     f"campaign.{c.campaign}.tree": c.tree})  # fmt: skip
    log_metrics(metrics)
    set_tags(tags)
    for path in (result.manifest, result.tree_file):
        log_file(path, "combine")
    log_catalog(pd.read_parquet(result.catalog), result.catalog, result.catalog_sha256,
                context="combine", name=result.out_dir.name)  # fmt: skip
    counts = ", ".join(f"{c}: {n}" for c, n in result.galaxies_per_campaign.items())
    describe_outcome(
        f"{result.rows_read} catalog rows -> {result.n_galaxies} galaxies on the derived tree "
        f"{result.schema.name} ({result.schema.n_questions} questions; galaxies per campaign "
        f"{counts}) in {result.catalog}"
    )
