"""The GZ DECaLS paper's published model outputs (`gz_decals_auto_posteriors.csv`).

That file holds no volunteer votes: per answer, `{q}_{a}_concentration` is a JSON list of
Dirichlet concentrations (25 per cell in the real rows: samples of the paper's models), plus
expected `_fraction`s and `{q}_proportion_volunteers_asked`. Training on it would teach a model
to copy another model, so ingest refuses it as a source. Its use is as a *baseline* in
evaluation: on the galaxies of a GZD-5 test split, the paper's own concentrations give the
paper's NLL and fractions on exactly our galaxies (`read_published_posteriors` -> evaluate's
(G, answers, S) concentrations, matched on iauname).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gz_experiments.errors import UserError
from gz_experiments.ingest.tables import read_columns, read_header
from gz_experiments.schema import Schema

CONCENTRATION_SUFFIX = "_concentration"
ID_COLUMN = "iauname"


def is_posteriors(header: list[str]) -> bool:
    return any(str(c).endswith(CONCENTRATION_SUFFIX) for c in header)


def posteriors_error(path: Path) -> UserError:
    return UserError(
        f"{path}: this is the GZ DECaLS automated posteriors catalogue (Dirichlet "
        f"'{CONCENTRATION_SUFFIX}' columns: a model's predictions, not volunteer votes), so it "
        f"cannot be a training source; give ingest the volunteer catalogues "
        f"(gz_decals_volunteers_5.csv, gz_decals_volunteers_1_and_2.csv) and use this file as a "
        f"published baseline (gz_experiments.ingest.read_published_posteriors)"
    )


def read_published_posteriors(path: str | Path, schema: Schema) -> tuple[list[str], np.ndarray]:
    """iaunames and concentrations (galaxies, answers of `schema`, samples) in label order.

    `schema` names its answers as the file does (gzd5); a missing answer column is a UserError.
    """
    path = Path(path)
    header = read_header(path)
    columns = [f"{c}{CONCENTRATION_SUFFIX}" for c in schema.label_cols]
    missing = [c for c in [ID_COLUMN, *columns] if c not in header]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {missing[:5]} for tree {schema.name!r}; expected the "
            f"GZ DECaLS auto posteriors file and its tree (gzd5)"
        )
    table = read_columns(path, [ID_COLUMN, *columns], [ID_COLUMN, *columns])
    samples = [
        [_samples(path, row + 1, col, text) for col, text in zip(columns, values, strict=True)]
        for row, values in enumerate(table[columns].itertuples(index=False))
    ]
    lengths = sorted({len(cell) for row in samples for cell in row})
    if len(lengths) > 1:
        raise UserError(
            f"{path}: concentration lists of different lengths {lengths}; expected one "
            f"number of samples in every cell"
        )
    return table[ID_COLUMN].tolist(), np.asarray(samples, dtype=np.float64)


def _samples(path: Path, row: int, column: str, text: str | None) -> list[float]:
    try:
        values = json.loads(text or "")
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or not values:
        raise UserError(f"{path}: row {row}, column '{column}' is not a list of concentrations")
    return values
