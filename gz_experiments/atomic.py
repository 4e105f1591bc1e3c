"""Every output file appears whole or not at all: written beside its final path, then renamed.

    with atomic_path("out/predictions.csv") as tmp:     # tmp: out/.predictions.csv.<random>.tmp
        frame.to_csv(tmp, index=False)
    write_table(frame, "out/skipped.csv")              # csv (spreadsheet-safe) or parquet
    write_text("out/ingest.json", text)

The temporary file is in the same folder, so the rename is atomic (never across file systems);
a failed write (a full disk, a kill) removes it and leaves whatever was at the final path before
(a kill -9 may leave the hidden .tmp file, never a torn output). The data are fsynced before the
rename, so after a power cut the final path holds the old file or the new one, not a hole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from gz_experiments.csv_cells import spreadsheet_safe


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`; renamed to `path` when the block ends without error."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_table(frame: pd.DataFrame, path: str | Path, fmt: str = "") -> None:
    """csv (by suffix, or `fmt`) with formula-like text cells neutralised, else parquet (exact)."""
    fmt = fmt or ("csv" if str(path).lower().endswith(".csv") else "parquet")
    with atomic_path(path) as tmp:
        if fmt == "csv":
            spreadsheet_safe(frame).to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
