"""What a run saw, as MLflow dataset inputs (the UI's Datasets column): shard splits by their
manifest's digest and folder, catalogs by their file hash and path."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import pandas as pd

from gz_experiments.shards.manifest import Manifest

# MLflow stores a dataset digest in a 36-character column.
DIGEST_LENGTH = 32


def _log(table: pd.DataFrame, source: str, name: str, digest: str, context: str, tags) -> None:
    with warnings.catch_warnings():
        # MLflow registers its local-file source twice and warns that a path matches both.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        # Schema inference's advice about integer columns concerns model signatures, not data.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(
            table, source=source, name=name, digest=digest[:DIGEST_LENGTH]
        )
        mlflow.log_input(dataset, context=context, tags=tags)


def log_shard_split(manifest: Manifest, split: str, context: str) -> None:
    """One split of a shard folder: its per-split catalog, named <tree>/<split>, digested by the
    manifest (so two runs on the same shards show the same dataset)."""
    table = pd.read_parquet(manifest.catalog_path(split))
    tags = {
        "split": split,
        "manifest_sha256": manifest.sha256,
        "shard_dir": manifest.origin,
    }
    name = f"{manifest.schema.name}/{split}"
    _log(table, manifest.origin, name, manifest.sha256, context, tags)


def log_catalog(
    table: pd.DataFrame, path: str | Path, sha256: str, context: str, name: str = ""
) -> None:
    """A catalog table (ingest's output, predict's input), digested by its file's sha256."""
    _log(table, str(path), name or Path(path).stem, sha256, context, {"sha256": sha256})
