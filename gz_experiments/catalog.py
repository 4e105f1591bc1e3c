"""Catalogs: a table of galaxies (`id_str`, `file_loc`, vote counts per answer), read and validated.

Each problem kind raises one UserError naming the file, the column, the first offending rows
(1-based data rows, header excluded) and how many there are, so a user can fix the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.errors import UserError
from gz_experiments.schema import Schema

ID_COL = "id_str"
FILE_COL = "file_loc"
# float32 holds every whole number up to 2^24 exactly; 16777217 would silently become 16777216.
MAX_VOTES = 2**24


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: catalog not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={ID_COL: str, FILE_COL: str})
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:
        raise UserError(f"{path}: cannot read the catalog: {exc}".replace("\n", " ")) from None
    raise UserError(f"{path}: unsupported catalog format {suffix!r}; use .csv or .parquet")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _rows(mask: np.ndarray | pd.Series, shown: int = 5) -> str:
    rows = np.flatnonzero(np.asarray(mask)) + 1
    listed = ", ".join(str(r) for r in rows[:shown])
    more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
    return f"{len(rows)} row(s): {listed}{more}"


def class_votes(df: pd.DataFrame, column: str, schema: Schema, source: Path) -> pd.DataFrame:
    """One class label per galaxy -> one vote for the matching answer (all other answers 0).

    A label is an answer's column (`question_answer`), an answer name when the tree has one
    question, or one of the tree's `class_aliases` (e.g. GZ1's spiral_cw -> spiral).
    """
    if column not in df.columns:
        raise UserError(
            f"{source}: no class column {column!r} (class_column); found {list(df.columns)[:12]}"
        )
    lookup = {a.label_col: a.label_col for a in schema.answers}
    if schema.n_questions == 1:
        lookup.update({a.name: a.label_col for a in schema.answers})
    lookup.update({k: lookup[v] for k, v in schema.class_aliases.items() if v in lookup})
    labels = df[column].astype("string").str.strip()
    answer = labels.map(lookup)
    unknown = answer.isna()
    if unknown.any():
        raise UserError(
            f"{source}: column {column!r} has labels {sorted(set(labels[unknown].fillna('')))[:5]} "
            f"in {_rows(unknown)} that are not answers of tree {schema.name!r}; expected one of "
            f"{sorted(lookup)[:12]}"
        )
    df = df.copy()
    for col in schema.label_cols:
        df[col] = (answer == col).astype(np.float32)
    return df


def load_catalog(
    path: str | Path,
    schema: Schema,
    *,
    labelled: bool = True,
    fill_missing_votes: bool = False,
    missing_questions: str = "error",
    class_column: str = "",
    fractional_votes: bool = False,
    check_files: bool = True,
) -> pd.DataFrame:
    """Read and validate a catalog; `file_loc` comes back absolute and vote counts as float32.

    labelled: vote columns are required (training); False for catalogs to predict on.
    fill_missing_votes: NaN votes become 0 (a question not asked); the count is printed.
    missing_questions: "error", or "zero" to treat questions with no columns at all as unasked
        (e.g. `gzd5_q1_votes`, which has only the first GZD-5 question).
    class_column: one class label per galaxy in this column, as one vote (see class_votes).
    fractional_votes: accept non-integer counts (vote fractions x volunteers).
    check_files: every `file_loc` must exist (sharding instead records missing files as rejects).
    """
    path = Path(path)
    df = read_table(path)
    if len(df) == 0:
        raise UserError(f"{path}: the catalog has no rows")
    if labelled and class_column:
        df = class_votes(df, class_column, schema, path)

    required = [ID_COL, FILE_COL]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(
            f"{path}: missing required column(s) {missing}; found {list(df.columns)[:12]}"
        )

    df = df.copy()
    blank = df[ID_COL].isna() | (df[ID_COL].astype(str).str.strip() == "")
    if blank.any():
        raise UserError(
            f"{path}: column '{ID_COL}' is empty in {_rows(blank)}; every galaxy needs an id"
        )
    df[ID_COL] = df[ID_COL].astype(str)
    dup = df[ID_COL].duplicated(keep=False)
    if dup.any():
        raise UserError(
            f"{path}: column '{ID_COL}' has duplicate ids {sorted(set(df.loc[dup, ID_COL]))[:5]} "
            f"in {_rows(dup)}; ids must be unique"
        )
    _resolve_file_locs(df, path, check_files)
    if labelled:
        _validate_votes(df, schema, path, fill_missing_votes, missing_questions, fractional_votes)
    return df.reset_index(drop=True)


def _resolve_file_locs(df: pd.DataFrame, path: Path, check_files: bool) -> None:
    empty = df[FILE_COL].isna() | (df[FILE_COL].astype(str).str.strip() == "")
    if empty.any():
        raise UserError(f"{path}: column '{FILE_COL}' is empty in {_rows(empty)}")
    base = path.resolve().parent
    df[FILE_COL] = [str(p if p.is_absolute() else base / p) for p in map(Path, df[FILE_COL])]
    if check_files:
        absent = np.array([not Path(p).is_file() for p in df[FILE_COL]])
        if absent.any():
            first = df.loc[absent, FILE_COL].iloc[0]
            raise UserError(
                f"{path}: column '{FILE_COL}' points to missing image files in {_rows(absent)} "
                f"(first: {first}); relative paths are read from the catalog's folder"
            )


def _validate_votes(
    df: pd.DataFrame,
    schema: Schema,
    path: Path,
    fill_missing: bool,
    missing_questions: str,
    fractional: bool,
) -> None:
    absent_questions = [
        q for q in schema.questions if not any(c in df.columns for c in q.label_cols)
    ]
    if absent_questions and missing_questions == "zero":
        for q in absent_questions:
            for col in q.label_cols:
                df[col] = 0.0
    missing = [c for c in schema.label_cols if c not in df.columns]
    if missing:
        raise UserError(
            f"{path}: missing vote column(s) {missing[:8]}"
            f"{f' and {len(missing) - 8} more' if len(missing) > 8 else ''} for schema "
            f"{schema.name!r}; add them, choose another schema, or pass --missing-questions zero "
            f"if those questions were never asked"
        )
    votes = df[schema.label_cols].apply(pd.to_numeric, errors="coerce")
    text = df[schema.label_cols].notna() & votes.isna()
    _raise_per_column(path, text, "is not a number")
    nan = votes.isna()
    if nan.to_numpy().any():
        if not fill_missing:
            _raise_per_column(
                path, nan, "is empty (NaN); pass --fill-missing-votes to count it as 0 votes"
            )
        print(
            f"{path}: filled {int(nan.to_numpy().sum())} empty vote cell(s) with 0 (--fill-missing-votes)"
        )
        votes = votes.fillna(0.0)
    _raise_per_column(path, votes < 0, "is negative")
    _raise_per_column(
        path,
        votes > MAX_VOTES,
        f"is above {MAX_VOTES:,} votes, more than float32 stores exactly (a unit mix-up?)",
    )
    if not fractional:
        _raise_per_column(
            path,
            (votes % 1) != 0,
            "is not a whole number of votes (vote fractions x volunteers: pass --fractional-votes)",
        )
    if not (votes.to_numpy() > 0).any():
        raise UserError(
            f"{path}: every vote count is 0; a model cannot learn from a catalog without votes "
            f"(check the columns, or shard it as --unlabelled-catalog to predict on it)"
        )
    for q in schema.questions:
        if q.total_votes_col not in df.columns:
            continue
        totals = pd.to_numeric(df[q.total_votes_col], errors="coerce")
        if fill_missing:
            totals = totals.fillna(0.0)
        wrong = ~np.isclose(totals, votes[q.label_cols].sum(axis=1), rtol=1e-6, atol=1e-6)
        if wrong.any():
            raise UserError(
                f"{path}: column '{q.total_votes_col}' differs from the sum of "
                f"{q.label_cols} in {_rows(wrong)}"
            )
    df[schema.label_cols] = votes.astype(np.float32)


def _raise_per_column(path: Path, bad: pd.DataFrame, problem: str) -> None:
    for col in bad.columns:
        if bad[col].any():
            raise UserError(f"{path}: column '{col}' {problem} in {_rows(bad[col])}")


def split_catalog(
    df: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int, source: str = ""
) -> dict[str, pd.DataFrame]:
    """Seeded train/val/test split of a shuffled catalog (the original had no seed).

    A split asked for (fraction > 0) must get at least one galaxy, and training needs one: a
    catalog too small for the requested split is refused with the numbers.
    """
    order = np.random.default_rng(seed).permutation(len(df))
    shuffled = df.iloc[order].reset_index(drop=True)
    n_test = int(round(len(df) * test_fraction))
    n_val = int(round(len(df) * val_fraction))
    n_train = len(df) - n_val - n_test
    empty = [
        name
        for name, n, asked in (
            ("train", n_train, True),
            ("val", n_val, val_fraction > 0),
            ("test", n_test, test_fraction > 0),
        )
        if asked and n < 1
    ]
    if empty:
        raise UserError(
            f"{source or 'the catalog'}: {len(df)} galaxies are too few for the split "
            f"(val {val_fraction:g} -> {n_val}, test {test_fraction:g} -> {n_test}, train "
            f"{n_train}): split(s) {empty} would be empty; add galaxies or change the fractions"
        )
    return {
        "train": shuffled.iloc[n_val + n_test :].reset_index(drop=True),
        "val": shuffled.iloc[:n_val].reset_index(drop=True),
        "test": shuffled.iloc[n_val : n_val + n_test].reset_index(drop=True),
    }
