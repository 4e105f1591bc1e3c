"""Prediction tables: the columns, named from the model's schema, and how rows are made.

One row per readable galaxy, in input order:

- `id_str`: the catalog's id, the image path relative to the folder without suffix, the file
  stem for a list of paths, or the row number;
- `{label}_concentration_{i}`, i = 0..n_samples-1: Dirichlet concentration of each answer in
  forward pass i (answers in schema label order; batch prediction only, not served);
- `{label}_fraction`: expected vote fraction = mean over passes of the Dirichlet mean
  alpha_a / sum(alpha of its question) — the probability of the answer *if the question is asked*;
- `{label}_fraction_std`: standard deviation (ddof 0) of that Dirichlet mean across passes;
- `{question}_p_asked`: probability a volunteer is asked the question (Schema.p_asked on the
  expected fractions; 1 for the root). Multiply by a fraction for the joint probability.

With acquisition columns (the predict step's `acquisition_columns`, default on; always in the
served model's output), for the next N volunteers (`n_volunteers`, default 10) of each question,
from the same MC samples (`gz_experiments.acquisition.acquisition_columns`):

- `{question}_bald`: expected information gain of their votes about the model (nats): high only
  where the MC samples disagree, so their votes would change the model;
- `{question}_predictive_entropy`: entropy of their predicted vote counts (nats): high for any
  uncertain galaxy, including one whose answer is genuinely ambiguous;
- `acquisition_bald`: sum over questions of `{question}_p_asked * {question}_bald`. Send the
  galaxies with the highest value to volunteers first (the `acquire` step ranks by it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gz_experiments.schema import Schema
from gz_experiments.votes.dirichlet_multinomial import expected_fractions
from gz_experiments.votes.information import acquisition_column_names, acquisition_columns

SKIPPED_COLUMNS = ["id_str", "source", "reason"]


def output_columns(schema: Schema, n_samples: int, *, acquisition: bool = False) -> list[str]:
    """Column names of a prediction table, in order (n_samples=0: without concentrations;
    `acquisition`: with the acquisition columns at the end)."""
    labels = schema.label_cols
    columns = ["id_str"]
    columns += [f"{label}_concentration_{i}" for label in labels for i in range(n_samples)]
    columns += [f"{label}_fraction" for label in labels]
    columns += [f"{label}_fraction_std" for label in labels]
    columns += [f"{q.name}_p_asked" for q in schema.questions]
    if acquisition:
        columns += acquisition_column_names(schema)
    return columns


def summarise(
    ids: list[str], concentrations: np.ndarray, schema: Schema, keep: bool,
    n_volunteers: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Table rows from concentrations (B, n_samples, n_answers); `keep` keeps the raw samples;
    `n_volunteers` adds the acquisition columns for that many next volunteers (None: none)."""
    fractions = expected_fractions(concentrations, schema)  # (B, n, A)
    expected = fractions.mean(axis=1)
    columns: dict[str, Any] = {"id_str": ids}
    if keep:
        n_samples = concentrations.shape[1]
        for a, label in enumerate(schema.label_cols):
            for i in range(n_samples):
                columns[f"{label}_concentration_{i}"] = concentrations[:, i, a].astype(np.float32)
    spread = fractions.std(axis=1)
    for a, label in enumerate(schema.label_cols):
        columns[f"{label}_fraction"] = expected[:, a].astype(np.float32)
    for a, label in enumerate(schema.label_cols):
        columns[f"{label}_fraction_std"] = spread[:, a].astype(np.float32)
    p_asked = schema.p_asked(expected)
    for q in schema.questions:
        columns[f"{q.name}_p_asked"] = p_asked[:, q.index].astype(np.float32)
    if n_volunteers is not None:
        columns |= acquisition_columns(concentrations, schema, n_volunteers)
    return pd.DataFrame(columns)
