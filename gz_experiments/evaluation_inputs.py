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
from gz_experiments.errors import UserError
from gz_experiments.manifest import Manifest
from gz_experiments.models import ModelSpec
from gz_experiments.schema import Schema

TRUTH_FILE = "truth.parquet"
TRUTH_SUFFIX = "_true"  # simulator column of an answer's true probability: {label_col}_true


@dataclass
class SplitPredictions:
    ids: list[str]
    counts: np.ndarray  # (galaxies, answers) volunteer votes
    concentrations: np.ndarray  # (galaxies, answers, samples)


def check_compatible(manifest: Manifest, spec: ModelSpec) -> None:
    """The model must answer the shards' tree and take their images as stored."""
    model_cols = spec.get_schema().label_cols
    if model_cols != manifest.label_cols:
        raise UserError(
            f"{manifest.path}: the shards' answers ({manifest.schema.name}, "
            f"{len(manifest.label_cols)} columns) differ from the model's "
            f"({spec.get_schema().name}, {len(model_cols)}); evaluate on shards of the same tree"
        )
    if manifest.img_size != spec.input_size or manifest.channels != spec.channels:
        raise UserError(
            f"{manifest.path}: shards hold {manifest.img_size}px x{manifest.channels} images, the "
            f"model takes {spec.input_size}px x{spec.channels}; evaluate on the shards it was "
            f"trained on (or shards written with the same img_size and greyscale)"
        )


def predict_split(model, spec: ModelSpec, manifest: Manifest, split: str, *, n_samples: int,
                  mc_mode: str = "head", batch_size: int = 128,
                  seed: int | None = None) -> SplitPredictions:  # fmt: skip
    """MC concentrations and counts for every galaxy of a labelled split, in manifest order."""
    import keras

    from gz_experiments.data import make_dataset
    from gz_experiments.predict import make_sampler

    if split == "predict":
        raise UserError(f"{manifest.path}: split 'predict' has no votes; evaluate 'test' or 'val'")
    check_compatible(manifest, spec)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    sample = make_sampler(model, n_samples, mc_mode)
    dataset = make_dataset(manifest, split, batch_size=batch_size, training=False, with_ids=True)
    ids, counts, concentrations = [], [], []
    for images, batch_counts, batch_ids in dataset:
        ids += [i.decode() for i in batch_ids.numpy()]
        counts.append(batch_counts.numpy())
        concentrations.append(np.transpose(sample(images).numpy(), (0, 2, 1)))
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
