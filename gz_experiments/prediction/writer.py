"""Appending prediction tables to one parquet or csv file, chunk by chunk (memory stays flat)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.errors import UserError

FORMATS = ("parquet", "csv")


def output_format_for(output: str | Path | None, output_format: str = "") -> str:
    fmt = output_format or ("csv" if str(output or "").lower().endswith(".csv") else "parquet")
    if fmt not in FORMATS:
        raise UserError(f"output_format {fmt!r}: use {' or '.join(FORMATS)}")
    return fmt


class TableWriter:
    """Context manager appending DataFrame chunks to one parquet or csv file (header once)."""

    def __init__(self, path: Path, fmt: str, columns: list[str]):
        self.path, self.fmt, self.columns = path, fmt, columns
        self.parquet = None

    def __enter__(self):
        if self.fmt == "csv":
            pd.DataFrame(columns=self.columns).to_csv(self.path, index=False)
        return self.write

    def write(self, chunk: pd.DataFrame) -> None:
        if self.fmt == "csv":
            chunk.to_csv(self.path, mode="a", header=False, index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.path, table.schema)
        self.parquet.write_table(table)

    def __exit__(self, exc_type, *exc_info) -> None:
        if self.parquet is not None:
            self.parquet.close()
        elif self.fmt == "parquet" and exc_type is None:  # nothing readable: an empty typed table
            empty = {c: pd.Series(dtype=str if c == "id_str" else np.float32) for c in self.columns}
            pd.DataFrame(empty).to_parquet(self.path, index=False)
