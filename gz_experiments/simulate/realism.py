"""Compare simulated vote counts with real ones: per-answer vote-fraction and total-vote quantiles.

Used by benchmarks/bench_simulate.py (against ../shared/data/gzd5_q1_votes, 4,000 real GZ DECaLS
galaxies) and by the tests that keep the simulator broadly realistic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.schema import Question

STATS = ("mean", "q25", "median", "q75")


def _stats(values: np.ndarray) -> dict[str, float]:
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"mean": float(values.mean()), "q25": q25, "median": median, "q75": q75}


def question_summary(table: pd.DataFrame, question: Question) -> pd.DataFrame:
    """Rows: each answer's vote fraction and the total votes; columns: mean and quartiles.

    Galaxies with no votes on the question are left out (their fractions are undefined).
    """
    totals = table[question.label_cols].sum(axis=1).to_numpy(dtype=float)
    voted = totals > 0
    rows = {
        f"{a.name} fraction": _stats(table.loc[voted, a.label_col].to_numpy(float) / totals[voted])
        for a in question.answers
    }
    rows["total votes"] = _stats(totals[voted])
    return pd.DataFrame.from_dict(rows, orient="index")[list(STATS)]


def read_real_votes(folder: str | Path) -> pd.DataFrame:
    """The real vote table in a shared-data folder (its one CSV file)."""
    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{folder}: no CSV file with real votes")
    return pd.read_csv(files[0])
