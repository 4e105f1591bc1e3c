"""Ingest: public Galaxy Zoo release files -> the project's standard catalog.

    run_ingest(IngestConfig.resolve("paper", sources=..., releases=..., out=...)) -> IngestResult

Modules: `releases` (adapters by name: gzd5, gzd12, gz2, kaggle-gz2) and `generic` (any table
plus a YAML column mapping); `tables` (reading csv/parquet); `checks` (row-level problems);
`fractions` (Kaggle cumulative fractions <-> per-question fractions <-> votes, Kaggle RMSE);
`sources` (one file through its adapter); `merge` (several sources -> one row per galaxy);
`outputs` (catalog.parquet, rejected.csv, ingest.json); `posteriors` (the GZ DECaLS published
model outputs: refused as a source, read as a baseline); `run` (the step); `config`.
"""

from gz_experiments.config.ingest import IngestConfig
from gz_experiments.ingest.fractions import (
    COUNT_MODES,
    counts_to_cumulative,
    cumulative_to_counts,
    cumulative_to_fractions,
    fractions_to_cumulative,
    kaggle_columns,
    kaggle_table,
    largest_remainder,
    rmse_kaggle,
)
from gz_experiments.ingest.outputs import read_catalog_note
from gz_experiments.ingest.posteriors import read_published_posteriors
from gz_experiments.ingest.releases import RELEASE_NAMES, detect_release, load_tree
from gz_experiments.ingest.run import IngestResult, SourceSummary, run_ingest
from gz_experiments.ingest.sources import get_release

__all__ = [
    "COUNT_MODES",
    "RELEASE_NAMES",
    "IngestConfig",
    "IngestResult",
    "SourceSummary",
    "counts_to_cumulative",
    "cumulative_to_counts",
    "cumulative_to_fractions",
    "detect_release",
    "fractions_to_cumulative",
    "get_release",
    "kaggle_columns",
    "kaggle_table",
    "largest_remainder",
    "load_tree",
    "read_catalog_note",
    "read_published_posteriors",
    "rmse_kaggle",
    "run_ingest",
]
