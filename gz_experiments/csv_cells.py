"""CSV cells a spreadsheet would run as a formula, neutralised (OWASP's CSV-injection rule).

    spreadsheet_safe(frame)   # "=cmd|' /C calc'!A0" -> "'=cmd|' /C calc'!A0"

Ids, paths and reasons come from users' catalogs; a CSV this project writes may be opened in a
spreadsheet, which runs a cell starting with = + - @ (or a tab / carriage return before one) as
a formula. Such text cells get a leading apostrophe, shown by spreadsheets as text. Numbers are
untouched (-0.5 stays a number), and parquet outputs are never changed: they keep exact values.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot start a formula (only object / string columns change)."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    if not text:
        return frame
    return frame.assign(**{str(c): frame[c].map(neutralise) for c in text})
