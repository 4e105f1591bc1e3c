"""Vote-fraction predictions with MC dropout, streamed in batches over any number of galaxies.

    model, spec = load_galaxy_model("models:/gz-decals@champion")  # gz_experiments.tracking
    df = predict(model, spec, "images/", n_samples=5)   # in memory; batch_predict streams to disk

`source` is a folder of PNG/JPEG images (searched recursively; hidden files ignored; any other
file is an error that lists them), a catalog (.csv/.parquet with `file_loc`, optional `id_str`),
a shard folder (manifest.json; split "predict" if it has one, else "test"), a single image, a
list of paths or PNG/JPEG bytes, or a DataFrame with `file_loc` or `image` (bytes or base64).

MC sampling (`mc_mode`):
- "head" (default): the backbone (augment in inference mode = central crop, then the encoder) runs
  once per image and only the dropout head runs `n_samples` times. When dropout is the only
  randomness this has the same distribution as n full passes, at a fraction of the cost.
- "full": n full passes as zoobot did: test-time augmentation (augment training=True), encoder in
  inference mode (BatchNorm uses its moving statistics), head with dropout on.

Output columns (one row per readable galaxy, in input order), named from the model's schema:
- `id_str`: the catalog's id, the image path relative to the folder without suffix, the file
  stem for a list of paths, or the row number;
- `{label}_concentration_{i}`, i = 0..n_samples-1: Dirichlet concentration of each answer in
  forward pass i (answers in schema label order);
- `{label}_fraction`: expected vote fraction = mean over passes of the Dirichlet mean
  alpha_a / sum(alpha of its question) — the probability of the answer *if the question is asked*;
- `{label}_fraction_std`: standard deviation (ddof 0) of that Dirichlet mean across passes;
- `{question}_p_asked`: probability a volunteer is asked the question (Schema.p_asked on the
  expected fractions; 1 for the root). Multiply by a fraction for the joint probability.

A galaxy whose image cannot be read is skipped and reported (id, source, reason), never silently:
predicted rows + skipped = inputs.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gz_experiments.errors import UserError
from gz_experiments.models import ModelSpec
from gz_experiments.predict_inputs import resolve_inputs
from gz_experiments.progress import show_progress
from gz_experiments.schema import Schema

MC_MODES = ("head", "full")
SKIPPED_COLUMNS = ["id_str", "source", "reason"]


def output_columns(schema: Schema, n_samples: int) -> list[str]:
    """Column names of a prediction table, in order (n_samples=0: without concentrations)."""
    labels = schema.label_cols
    columns = ["id_str"]
    columns += [f"{label}_concentration_{i}" for label in labels for i in range(n_samples)]
    columns += [f"{label}_fraction" for label in labels]
    columns += [f"{label}_fraction_std" for label in labels]
    columns += [f"{q.name}_p_asked" for q in schema.questions]
    return columns


def summarise(
    ids: list[str], concentrations: np.ndarray, schema: Schema, keep: bool
) -> pd.DataFrame:
    """Table rows from concentrations (B, n_samples, n_answers); `keep` keeps the raw samples."""
    fractions = schema.fractions_within_questions(concentrations)  # (B, n, A)
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
    return pd.DataFrame(columns)


# model -> {(n_samples, mc_mode): compiled sampler}. Tracing EfficientNet takes seconds, so a
# served model must not retrace per request. Weak keys: the samplers close over the model's
# layers, not the model, so a dropped model frees its entry.
_SAMPLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_sampler(model, n_samples: int, mc_mode: str):
    """A compiled function: images (B, S, S, C) -> concentrations (B, n_samples, n_answers)."""
    if mc_mode not in MC_MODES:
        raise UserError(f"mc_mode {mc_mode!r} is not one of {', '.join(MC_MODES)}")
    if n_samples < 1:
        raise UserError(f"n_samples must be at least 1, got {n_samples}")
    cache = _SAMPLERS.setdefault(model, {})
    if (n_samples, mc_mode) not in cache:
        cache[n_samples, mc_mode] = _compile_sampler(model, n_samples, mc_mode)
    return cache[n_samples, mc_mode]


def _compile_sampler(model, n_samples: int, mc_mode: str):
    import tensorflow as tf

    from gz_experiments.models import split_model

    augment, encoder, head = split_model(model)
    # A free batch dimension: one trace serves every batch, including the short last one.
    images_spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)]

    @tf.function(input_signature=images_spec)
    def head_only(images):
        features = encoder(augment(images, training=False), training=False)
        # Each galaxy's features repeated n times in adjacent rows: one head call, and every row
        # gets its own dropout mask.
        concentrations = head(tf.repeat(features, n_samples, axis=0), training=True)
        return tf.reshape(concentrations, (-1, n_samples, concentrations.shape[-1]))

    @tf.function(input_signature=images_spec)
    def full(images):
        passes = [
            head(encoder(augment(images, training=True), training=False), training=True)
            for _ in range(n_samples)
        ]
        return tf.stack(passes, axis=1)

    return head_only if mc_mode == "head" else full


def reseed(model, seed: int) -> None:
    """Restart the model's random streams (dropout masks, test-time augmentation) from `seed`.

    Keras layers draw from their own SeedGenerator state variables, set when the model was
    built or loaded; global seeding does not reach them. Each generator gets a distinct start.
    """
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    starts = np.random.SeedSequence(seed).generate_state(len(states))
    for state, start in zip(states, starts, strict=True):
        state.assign(np.array([start, 0], dtype=state.dtype))


@dataclass
class PredictionReport:
    """What a streamed prediction produced: rows written, skipped galaxies (id, source, reason)."""

    output: Path | None
    n_predicted: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        return self.n_predicted + len(self.skipped)

    def skipped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.skipped, columns=SKIPPED_COLUMNS)


def iter_predictions(
    model,
    spec: ModelSpec,
    source: Any,
    report: PredictionReport,
    *,
    n_samples: int = 5,
    mc_mode: str = "head",
    batch_size: int = 64,
    split: str = "",
    keep_concentrations: bool = True,
    progress: bool = False,
    seed: int | None = None,
) -> Iterator[pd.DataFrame]:
    """One table chunk per batch; unreadable galaxies go to `report.skipped` as they are met.

    Bad input and options fail here, before any image is decoded or the model traced.
    """
    inputs = resolve_inputs(source, spec, split)
    sample = make_sampler(model, n_samples, mc_mode)
    if seed is not None:
        reseed(model, seed)
    return _chunks(
        inputs, sample, spec.get_schema(), report, batch_size, keep_concentrations, progress
    )


def _chunks(inputs, sample, schema, report, batch_size, keep_concentrations, progress):
    from tqdm import tqdm

    with tqdm(
        total=inputs.total, unit="galaxy", disable=not show_progress(progress), file=sys.stderr
    ) as bar:
        for batch in inputs.batches(batch_size):
            report.skipped.extend(batch.skipped)
            bar.update(len(batch.ids) + len(batch.skipped))
            if not batch.ids:
                continue
            concentrations = sample(batch.images).numpy()
            report.n_predicted += len(batch.ids)
            yield summarise(batch.ids, concentrations, schema, keep_concentrations)


def predict(
    model,
    spec: ModelSpec,
    source: Any,
    *,
    n_samples: int = 5,
    mc_mode: str = "head",
    batch_size: int = 64,
    split: str = "",
    progress: bool = False,
    seed: int | None = None,
) -> pd.DataFrame:
    """The whole table in memory (see the module docstring for columns); the skipped galaxies
    are in `df.attrs["skipped"]` (a DataFrame id_str/source/reason) and counted on stderr."""
    report = PredictionReport(output=None)
    chunks = list(
        iter_predictions(
            model,
            spec,
            source,
            report,
            n_samples=n_samples,
            mc_mode=mc_mode,
            batch_size=batch_size,
            split=split,
            progress=progress,
            seed=seed,
        )
    )
    columns = output_columns(spec.get_schema(), n_samples)
    df = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=columns)
    warn_skipped(report)
    df.attrs["skipped"] = report.skipped_frame()
    return df


def predict_frame(
    model,
    spec: ModelSpec,
    frame: pd.DataFrame,
    *,
    n_samples: int = 5,
    mc_mode: str = "head",
    batch_size: int = 64,
) -> pd.DataFrame:
    """The pyfunc / serving path: one output row per input row (fractions, spreads, p_asked);
    any unreadable image is a UserError naming its row, so rows never silently go missing."""
    report = PredictionReport(output=None)
    chunks = list(
        iter_predictions(
            model,
            spec,
            frame,
            report,
            n_samples=n_samples,
            mc_mode=mc_mode,
            batch_size=batch_size,
            keep_concentrations=False,
        )
    )
    if report.skipped:
        details = "; ".join(f"{where}: {reason}" for _, where, reason in report.skipped[:5])
        raise UserError(f"{len(report.skipped)} image(s) could not be read ({details})")
    return pd.concat(chunks, ignore_index=True)


def warn_skipped(report: PredictionReport) -> None:
    if report.skipped:
        first = report.skipped[0]
        print(
            f"skipped {len(report.skipped)} of {report.n_inputs} galaxies whose image could not "
            f"be read (first: {first[1]}: {first[2]})",
            file=sys.stderr,
        )
