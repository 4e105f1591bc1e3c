"""Row-level checks of one source file: every problem names the file's column and joins its row's
rejection reason (rows are data rows, 1-based, header excluded, as in catalog.py's messages).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.catalog import MAX_VOTES
from gz_experiments.ingest.releases import ImagePaths, SourceColumns
from gz_experiments.schema import Schema

MAX_REASONS = 3  # problems spelled out per row; the rest are counted
# Kaggle's values have 6+ decimals and add up to ~1e-6; a misplaced dependency or a shifted
# column is off by far more. 1e-3 also lets through files rounded to 4 decimals.
CUMULATIVE_TOLERANCE = 1e-3


class Problems:
    """Problems per row index (0-based) of one source, in the order they were found."""

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.by_row: dict[int, list[str]] = {}

    def add(self, mask, message: Callable[[int], str]) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            self.by_row.setdefault(int(i), []).append(message(int(i)))

    @property
    def rejected(self) -> np.ndarray:
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[list(self.by_row)] = True
        return mask

    def reason(self, i: int) -> str:
        problems = self.by_row[i]
        more = len(problems) - MAX_REASONS
        return "; ".join(problems[:MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")


def _empty(raw: pd.Series) -> pd.Series:
    return raw.isna() | raw.astype(str).str.strip().eq("")


def check_ids(raw: pd.Series, id_col: str, problems: Problems) -> pd.Series:
    """Ids as text (None where empty); empty and repeated ids are problems."""
    empty = _empty(raw)
    problems.add(empty, lambda i: f"column '{id_col}' is empty")
    ids = raw.where(~empty, None).map(lambda v: None if v is None else str(v).strip())
    repeated = ids.notna() & ids.duplicated(keep=False)
    rows_of = {k: list(v + 1) for k, v in ids[repeated].groupby(ids[repeated]).groups.items()}
    problems.add(
        repeated,
        lambda i: (
            f"column '{id_col}': id {ids[i]!r} is repeated in rows "
            f"{', '.join(map(str, rows_of[ids[i]][:5]))}; ids must be unique within a file"
        ),
    )
    return ids


def check_values(
    table: pd.DataFrame, labels: dict[str, str], values_kind: str, problems: Problems
) -> pd.DataFrame:
    """Numbers per label column (NaN where the cell is a problem): votes, or Kaggle shares."""
    out = {}
    for label, column in labels.items():
        raw = table[column]
        number = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        empty = _empty(raw)
        text = ~empty & ~np.isfinite(number)
        negative = np.isfinite(number) & (number < 0)
        problems.add(empty, lambda i, c=column: f"column '{c}' is empty")
        problems.add(text, lambda i, c=column, r=raw: f"column '{c}' is not a number ({r[i]!r})")
        problems.add(negative, lambda i, c=column, n=number: f"column '{c}' is negative ({n[i]:g})")
        bad = empty | text | negative
        if values_kind == "counts":
            fraction = ~bad & (number % 1 != 0)
            too_many = ~bad & (number > MAX_VOTES)
            problems.add(
                fraction,
                lambda i, c=column, n=number: (
                    f"column '{c}' is not a whole number of votes ({n[i]:g})"
                ),
            )
            problems.add(
                too_many,
                lambda i, c=column, n=number: (
                    f"column '{c}' is {n[i]:g} votes, more than float32 stores exactly"
                ),
            )
            bad |= fraction | too_many
        else:
            above = ~bad & (number > 1 + CUMULATIVE_TOLERANCE)
            problems.add(
                above,
                lambda i, c=column, n=number: (
                    f"column '{c}' is {n[i]:g}, above 1: it must be a share of all volunteers"
                ),
            )
            bad |= above
        out[label] = number.where(~bad)
    return pd.DataFrame(out, index=table.index)


def check_totals(
    table: pd.DataFrame,
    values: pd.DataFrame,
    columns: SourceColumns,
    schema: Schema,
    problems: Problems,
    outside: str = "accept",
) -> pd.DataFrame:
    """A question's `_total-votes` against the sum of its answers' counts.

    Answers adding up to *more* than the total is always a problem. Adding up to less means
    votes for answers the file does not list: in the real GZD-5 file, `merging_total-votes`
    exceeds its four answers in 2 of the 6 rows of shared/data (its `_fraction`s divide by that
    total, so those votes were cast). outside="accept" keeps such rows with the listed answers
    (the loss takes a question's total from its counts, as zoobot did); "reject" rejects them.
    Returns the votes outside the listed answers per question (columns) and row.
    """
    outside_votes = {}
    for q_name, column in columns.totals.items():
        answers = schema.question(q_name).label_cols
        names = [columns.labels[a] for a in answers]
        total = pd.to_numeric(table[column], errors="coerce").astype(np.float64)
        summed = values[answers].sum(axis=1, min_count=len(answers))
        problems.add(
            ~np.isfinite(total) | (total < 0),
            lambda i, c=column: f"column '{c}' is not a vote count ({table[c][i]!r})",
        )
        comparable = summed.notna() & np.isfinite(total)
        short = comparable & (total - summed > 1e-6)
        wrong = comparable & (summed - total > 1e-6)
        if outside == "reject":
            wrong |= short
        problems.add(
            wrong,
            lambda i, c=column, t=total, s=summed, n=names: (
                f"column '{c}' is {t[i]:g} but {' + '.join(n)} = {s[i]:g}"
            ),
        )
        outside_votes[q_name] = (total - summed).where(short, 0.0)
    return pd.DataFrame(outside_votes, index=table.index)


def check_cumulative(
    values: pd.DataFrame, columns: SourceColumns, schema: Schema, problems: Problems
) -> None:
    """A question's shares add up to the share that reached it: its parents' values, 1 at a root."""
    present = {schema.answer(label).question for label in columns.labels}
    for q in schema.questions:
        if q.name not in present:
            continue
        parent_questions = {schema.answer(p).question for p in q.parents}
        if not parent_questions <= present:
            continue  # its parent has no columns here: nothing to compare with
        summed = values[q.label_cols].sum(axis=1, min_count=len(q.label_cols))
        if q.parents:
            reached = values[list(q.parents)].sum(axis=1, min_count=len(q.parents))
            what = " + ".join(columns.labels[p] for p in q.parents)
        else:
            reached = pd.Series(1.0, index=values.index)
            what = "1 (everyone answers it)"
        wrong = (summed - reached).abs() > CUMULATIVE_TOLERANCE
        span = f"'{columns.labels[q.label_cols[0]]}'..'{columns.labels[q.label_cols[-1]]}'"
        problems.add(
            wrong,
            lambda i, s=summed, r=reached, span=span, what=what: (
                f"columns {span} add up to {s[i]:.6f} but {what} = {r[i]:.6f}: a question's "
                f"shares must add up to the share of volunteers who reached it"
            ),
        )


def check_images(images: ImagePaths, problems: Problems, inside: Path | None = None) -> pd.Series:
    """Absolute image paths; a path that cannot be built or is not a file is a problem, and so
    is one that leads out of the folder `inside` (resolved: `../`, absolute paths, links), so a
    catalog row cannot make later steps read /etc/passwd (None: anywhere)."""
    problems.add(images.why_none.ne(""), lambda i: images.why_none[i])
    leaves = pd.Series(False, index=images.paths.index)
    if inside is not None:
        root = inside.resolve()
        leaves = images.paths.map(lambda p: p is not None and not _inside(p, root))
        problems.add(
            leaves,
            lambda i: (
                f"column '{images.column}': image {images.paths[i]} is outside the image "
                f"folder {root}; move it inside, or pass images_outside=true to accept it"
            ),
        )
    absent = ~leaves & images.paths.map(lambda p: p is not None and not Path(p).is_file())
    problems.add(
        absent,
        lambda i: f"column '{images.column}': image {images.paths[i]} not found ({images.how})",
    )
    return images.paths


def _inside(path: str, root: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL byte
        return False
