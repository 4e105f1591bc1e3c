"""What ingest writes into its `out` folder.

- catalog.parquet: the standard catalog. Parquet, not csv: ids keep their type (an SDSS objid has
  18 digits, beyond float64; a csv reader guessing types would round it), vote columns keep
  their dtype (int64 votes; float64 marks fractional votes), and the file carries its own note
  of tree and count mode (schema metadata key `gz_experiments.ingest`) wherever it is copied.
  One format only, so two copies can never disagree; `pd.read_parquet(...).to_csv(...)` makes
  a csv to look at.
- rejected.csv: `source,row,id_str,reason`, one line per rejected data row (header only if
  none), meant to be read by a person fixing the files.
- ingest.json: what was read (path, sha256, release, rows read / written / rejected per
  source), the tree and the count mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from gz_experiments.atomic import atomic_path, write_table, write_text
from gz_experiments.ingest.sources import Rejection

CATALOG_NAME = "catalog.parquet"
REJECTED_NAME = "rejected.csv"
MANIFEST_NAME = "ingest.json"
METADATA_KEY = b"gz_experiments.ingest"
REJECTED_COLUMNS = ["source", "row", "id_str", "reason"]


def write_rejected(path: Path, rejections: list[Rejection]) -> None:
    rows = [[r.source, r.row, r.id_str, r.reason] for r in rejections]
    write_table(pd.DataFrame(rows, columns=REJECTED_COLUMNS), path)


def write_catalog(path: Path, catalog: pd.DataFrame, note: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(catalog, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(note).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)


def read_catalog_note(path: str | Path) -> dict:
    """The note ingest left in a catalog.parquet ({} for a catalog written by anything else)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else {}


def write_manifest(path: Path, manifest: dict) -> None:
    write_text(path, json.dumps(manifest, indent=2) + "\n")
