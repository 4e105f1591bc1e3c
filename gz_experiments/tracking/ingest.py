"""Logging an ingest result: each source's hash and row counts, the outputs, and the catalog as
the run's dataset (so runs that shard it show where its rows came from)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from gz_experiments.tracking.datasets import log_catalog
from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_file, log_metrics, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.ingest.run import IngestResult


def log_ingest(result: IngestResult) -> None:
    metrics = {
        "rows_read": result.rows_read,
        "rows_written": result.rows_written,
        "rows_rejected": result.rows_rejected,
        "n_galaxies": result.n_galaxies,
    }
    tags = {"tree": result.tree, "count_mode": result.count_mode, "catalog": str(result.catalog)}
    for i, source in enumerate(result.sources):
        name = f"source{i}"
        metrics.update(
            {
                f"{name}/rows_read": source.rows_read,
                f"{name}/rows_written": source.rows_written,
                f"{name}/rows_rejected": source.rows_rejected,
            }
        )
        tags.update(
            {
                f"{name}.path": source.path,
                f"{name}.release": source.release,
                f"{name}.sha256": source.sha256,
            }
        )
    log_metrics(metrics)
    set_tags(tags)
    for path in (result.manifest, result.rejected):
        log_file(path, "ingest")
    table = pd.read_parquet(result.catalog)
    log_catalog(
        table,
        result.catalog,
        result.catalog_sha256,
        context="ingest",
        name=Path(result.out_dir).name,
    )
    describe_outcome(
        f"{result.rows_read} rows read = {result.rows_written} written + "
        f"{result.rows_rejected} rejected; {result.n_galaxies} galaxies in {result.catalog}"
    )
