"""Reading release files (csv or parquet): the header first, then only the columns ingest needs.

Every file-level problem is a UserError naming the file and what to do. Values are read as the
file holds them (csv: text) so that a row-level message can quote the offending cell.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gz_experiments.config.ingest import SOURCE_SUFFIXES
from gz_experiments.errors import UserError


def check_source_file(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"{path}: source file not found; check the path given in sources")
    if path.suffix.lower() not in SOURCE_SUFFIXES:
        raise UserError(
            f"{path}: unsupported format {path.suffix!r}; give the release file as "
            f"{' or '.join(SOURCE_SUFFIXES)}"
        )


def read_header(path: Path) -> list[str]:
    """Column names without reading the rows (a GZD-5 file has 253,286 rows x 127 columns)."""
    check_source_file(path)
    try:
        if path.suffix.lower() == ".csv":
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception as exc:  # the reader's own message says what is wrong
        raise _unreadable(path, exc) from None


def read_columns(
    path: Path, columns: list[str], text_columns: list[str], max_rows: int = 0
) -> pd.DataFrame:
    """The named columns of every row (or the first `max_rows`); `text_columns` come back as str.

    Ids are read as text so that SDSS objids (above 2**53) keep every digit and a Kaggle
    GalaxyID stays "100008", not 100008.0.
    """
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, usecols=columns, dtype=str, nrows=max_rows or None)
        table = pd.read_parquet(path, columns=columns)
    except Exception as exc:
        raise _unreadable(path, exc) from None
    if max_rows:
        table = table.head(max_rows)
    for col in text_columns:
        table[col] = _as_text(table[col])
    return table.reset_index(drop=True)


def _as_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values) and values.dropna().mod(1).eq(0).all():
        values = values.astype("Int64")  # 100008.0 -> "100008"
    return (
        values.astype(object)
        .where(values.notna(), None)
        .map(lambda v: None if v is None else str(v))
    )


def _unreadable(path: Path, exc: Exception) -> UserError:
    kind = "CSV" if path.suffix.lower() == ".csv" else "parquet"
    message = f"{path}: cannot read it as {kind}: {exc}; is it the release file, complete?"
    return UserError(message.replace("\n", " "))
