"""What `evaluate` compares: a model's MC concentrations on a labelled shard split, the split's
volunteer counts, and (for simulated data) the simulator's true answer probabilities.

Counts and predictions come from one pass over the split's TFRecords, so they are aligned by
construction; the truth table is joined on `id_str` and must cover every evaluated galaxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.catalog import ID_COL
from gz_experiments.config import Sampling
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.schema import Schema
from gz_experiments.shards.manifest import Manifest, check_compatible

TRUTH_FILE = "truth.parquet"
TRUTH_SUFFIX = "_true"  # simulator column of an answer's true probability: {label_col}_true


@dataclass
class SplitPredictions:
    ids: list[str]
    counts: np.ndarray  # (galaxies, answers) volunteer votes
    concentrations: np.ndarray  # (galaxies, answers, samples)


def predict_split(
    model, spec: ModelSpec, manifest: Manifest, split: str, sampling: Sampling
) -> SplitPredictions:
    """MC concentrations and counts for every galaxy of a labelled split, in manifest order,
    drawn exactly as `predict` draws them (prediction.sampling), so a seed reproduces them."""
    from gz_experiments.prediction.sampling import Sampler
    from gz_experiments.shards.dataset import make_dataset

    if split == "predict":
        raise UserError(f"{manifest.path}: split 'predict' has no votes; evaluate 'test' or 'val'")
    check_compatible(manifest, spec)
    sampler = Sampler(model, sampling)
    greyscale = True if spec.greyscale and manifest.channels == 3 else None
    dataset = make_dataset(
        manifest, split, batch_size=sampling.batch_size, training=False, with_ids=True,
        greyscale=greyscale,
    )  # fmt: skip
    ids, counts, concentrations = [], [], []
    for images, batch_counts, batch_ids in dataset:
        batch = [i.decode() for i in batch_ids.numpy()]
        ids += batch
        counts.append(batch_counts.numpy())
        concentrations.append(np.transpose(sampler(images.numpy(), batch), (0, 2, 1)))
    return SplitPredictions(ids, np.concatenate(counts), np.concatenate(concentrations))


def truth_path(manifest: Manifest, explicit: str = "") -> Path | None:
    """The given truth table, or `truth.parquet` beside the shards' source catalog if present."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"{path}: truth table not found")
        return path
    catalog = manifest.data.get("sources", {}).get("catalog") or ""
    beside = Path(catalog).parent / TRUTH_FILE if catalog else None
    return beside if beside is not None and beside.is_file() else None


def load_truth(path: str | Path, ids: list[str], schema: Schema) -> np.ndarray:
    """True answer probabilities within each question (galaxies, answers) in `ids` order, from
    the simulator's `{label_col}_true` columns."""
    table = pd.read_parquet(path)
    columns = [f"{c}{TRUTH_SUFFIX}" for c in schema.label_cols]
    missing_cols = [c for c in [ID_COL, *columns] if c not in table.columns]
    if missing_cols:
        raise UserError(
            f"{path}: truth table lacks column(s) {missing_cols[:5]}; it needs {ID_COL} and "
            f"<label column>{TRUTH_SUFFIX} for every answer of schema {schema.name!r}"
        )
    table = table.assign(**{ID_COL: table[ID_COL].astype(str)}).set_index(ID_COL)
    missing = pd.Index(ids).difference(table.index)
    if len(missing):
        raise UserError(
            f"{path}: no truth for {len(missing)} evaluated galaxies (e.g. {list(missing[:3])}); "
            f"is it the table of the simulation these shards came from?"
        )
    return table.loc[ids, columns].to_numpy(dtype=np.float64)
