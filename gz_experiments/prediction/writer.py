"""Appending prediction tables to one parquet or csv file, chunk by chunk (memory stays flat).

The file is written beside its final path and renamed when the last chunk is in (atomic.py): a
failed run (a full disk, a crash) never leaves a torn table at `path`. CSV text cells that a
spreadsheet would run as formulas are neutralised (csv_cells.py); parquet keeps exact values.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.atomic import atomic_path
from gz_experiments.csv_cells import spreadsheet_safe
from gz_experiments.errors import UserError

FORMATS = ("parquet", "csv")


def output_format_for(output: str | Path | None, output_format: str = "") -> str:
    fmt = output_format or ("csv" if str(output or "").lower().endswith(".csv") else "parquet")
    if fmt not in FORMATS:
        raise UserError(f"output_format {fmt!r}: use {' or '.join(FORMATS)}")
    return fmt


def check_output_path(output: str | Path) -> None:
    """Refuse an output that cannot be written as a file, before any work (not after it)."""
    path = Path(output)
    if path.is_dir():
        raise UserError(
            f"output={path} is a folder; give a file name such as {path}/predictions.parquet"
        )
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"output={path}: cannot write in {parent}; choose another output")


class TableWriter:
    """Context manager appending DataFrame chunks to one parquet or csv file (header once)."""

    def __init__(self, path: Path, fmt: str, columns: list[str]):
        self.path, self.fmt, self.columns = path, fmt, columns
        self.parquet = None
        self.stack = ExitStack()
        self.tmp = path

    def __enter__(self):
        self.tmp = self.stack.enter_context(atomic_path(self.path))
        if self.fmt == "csv":
            pd.DataFrame(columns=self.columns).to_csv(self.tmp, index=False)
        return self.write

    def write(self, chunk: pd.DataFrame) -> None:
        if self.fmt == "csv":
            spreadsheet_safe(chunk).to_csv(self.tmp, mode="a", header=False, index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.tmp, table.schema)
        self.parquet.write_table(table)

    def __exit__(self, exc_type, exc, traceback) -> bool | None:
        if self.parquet is not None:
            self.parquet.close()
        elif self.fmt == "parquet" and exc_type is None:  # nothing readable: an empty typed table
            empty = {c: pd.Series(dtype=str if c == "id_str" else np.float32) for c in self.columns}
            pd.DataFrame(empty).to_parquet(self.tmp, index=False)
        # renames the finished file into place, or removes it if the run failed
        return self.stack.__exit__(exc_type, exc, traceback)
