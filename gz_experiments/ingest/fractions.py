"""Vote fractions <-> vote counts through a decision tree (Kaggle's GZ2 "Galaxy Challenge" format).

Kaggle publishes *cumulative* fractions: an answer's value is the share of all volunteers who
gave it, i.e. (share of volunteers who reached the question) x (fraction within the question).
So a question's values add up to the share that reached it (its parents' values), and 1 at a root.

    cumulative --cumulative_to_fractions--> per-question fractions --fractions_to_cumulative--> back
    cumulative --cumulative_to_counts(mode)--> votes for the loss
    predicted fractions --kaggle_table--> Class1.1 ... columns, scored by rmse_kaggle

Count modes (the labels the Dirichlet-multinomial loss sees):
- pseudo: n volunteers walk the tree; each question gets the whole votes that reached it, split
  over its answers by largest-remainder rounding, so its counts add up exactly and a child's
  total equals its parent answer's count, as in real volunteer counts;
- fractional: n x the cumulative value, not rounded. The loss written with lgamma is defined for
  real counts (a generalised likelihood); a catalog of these must be read with fractional votes.
Either way a deep question reached by few volunteers carries few votes, so it weighs little in
the loss, as it does with real counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gz_experiments.config.ingest import COUNT_MODES
from gz_experiments.schema import Schema

KAGGLE_ID = "GalaxyID"


def kaggle_columns(schema: Schema) -> list[str]:
    """Kaggle's column names in label order: question k answer j -> Class{k}.{j} (1-based)."""
    return [
        f"Class{qi + 1}.{ai + 1}"
        for qi, q in enumerate(schema.questions)
        for ai in range(len(q.answers))
    ]


def cumulative_to_fractions(cumulative: np.ndarray, schema: Schema) -> np.ndarray:
    """Per-question fractions: each value over its question's total (0 where nobody reached it)."""
    return schema.fractions_within_questions(cumulative)


def fractions_to_cumulative(fractions: np.ndarray, schema: Schema) -> np.ndarray:
    """Per-question fractions (..., answers) -> Kaggle's cumulative values (fraction x p_asked)."""
    return schema.joint_fractions(fractions)


def cumulative_to_counts(
    cumulative: np.ndarray,
    schema: Schema,
    n_volunteers: int,
    mode: str,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """Cumulative fractions (galaxies, answers) -> votes by `mode` (pseudo or fractional).

    present: per question, whether the source has its columns; an absent question gets 0 votes
    (never asked) and its children are reached by round(n x their own total) instead.
    """
    cumulative = np.asarray(cumulative, dtype=np.float64)
    present = np.ones(schema.n_questions, bool) if present is None else np.asarray(present)
    if mode == "fractional":
        keep = present[_question_of_answer(schema)]
        return np.where(keep, n_volunteers * cumulative, 0.0)
    if mode != "pseudo":
        raise ValueError(f"count mode {mode!r} is not one of {COUNT_MODES}")
    fractions = cumulative_to_fractions(cumulative, schema)
    counts = np.zeros_like(cumulative)
    for q in schema.topological_order:
        if not present[q.index]:
            continue
        block = slice(q.start, q.end + 1)
        parents = [schema.answer(p) for p in q.parents]
        if parents and all(present[schema.question(p.question).index] for p in parents):
            reached = sum(counts[:, p.index] for p in parents)
        else:
            reached = np.rint(n_volunteers * cumulative[:, block].sum(axis=1))
        counts[:, block] = largest_remainder(reached, fractions[:, block])
    return counts


def _question_of_answer(schema: Schema) -> np.ndarray:
    return np.array([schema.question(a.question).index for a in schema.answers], dtype=int)


def largest_remainder(totals: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Whole numbers per row adding up exactly to `totals`, closest to totals x fractions.

    Each row gets floor(total x fraction) per answer; the votes left over go one each to the
    answers with the largest remainders (ties to the earlier answer). A row whose fractions are
    all 0 (nobody answered) gets 0 votes whatever its total.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    share = fractions.sum(axis=1, keepdims=True)
    totals = np.where(share[:, 0] > 0, np.asarray(totals, dtype=np.float64), 0.0)
    normalised = np.divide(fractions, share, out=np.zeros_like(fractions), where=share > 0)
    exact = totals[:, None] * normalised
    whole = np.floor(exact)
    left = (totals - whole.sum(axis=1)).round().astype(int)
    order = np.argsort(-(exact - whole), axis=1, kind="stable")
    rank = np.argsort(order, axis=1, kind="stable")
    return whole + (rank < left[:, None])


def counts_to_cumulative(counts: np.ndarray, schema: Schema) -> np.ndarray:
    """Votes (galaxies, answers) -> Kaggle's cumulative values, through per-question fractions."""
    return fractions_to_cumulative(schema.fractions_within_questions(counts), schema)


def kaggle_table(fractions: np.ndarray, schema: Schema, ids=None) -> pd.DataFrame:
    """Predicted per-question fractions -> a table in Kaggle's format (GalaxyID, Class1.1, ...)."""
    table = pd.DataFrame(fractions_to_cumulative(fractions, schema), columns=kaggle_columns(schema))
    if ids is not None:
        table.insert(0, KAGGLE_ID, list(ids))
    return table


def rmse_kaggle(
    true_cumulative: pd.DataFrame,
    predicted_cumulative: pd.DataFrame,
    columns: list[str] | None = None,
) -> float:
    """Kaggle's score: RMSE over every galaxy x column, rows aligned by position.

    columns: those to score; None = the Class columns present in the truth (a subset such as
    shared/data/gz2_kaggle_424's 17 columns is scored on those only).
    """
    if columns is None:
        columns = [c for c in true_cumulative.columns if str(c).startswith("Class")]
    missing = [c for c in columns if c not in predicted_cumulative.columns]
    missing += [c for c in columns if c not in true_cumulative.columns]
    if missing or not columns:
        raise ValueError(f"cannot score Kaggle columns: missing {missing or 'all of them'}")
    if len(true_cumulative) != len(predicted_cumulative):
        raise ValueError(
            f"{len(true_cumulative)} true rows but {len(predicted_cumulative)} predicted rows"
        )
    error = true_cumulative[columns].to_numpy(float) - predicted_cumulative[columns].to_numpy(float)
    return float(np.sqrt(np.mean(error**2)))
