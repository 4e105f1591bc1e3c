"""Predictions streamed over any number of galaxies: the API that predict, evaluate, acquire,
embed and the served model share.

    df = predict(model, spec, "images/", Sampling(n_samples=5))          # a table in memory
    report = predict_to_file(model, spec, "catalog.csv", "out.parquet", sampling)

Memory stays flat in the number of galaxies: each batch's rows are appended to the output as
soon as they are computed. Columns: see `prediction.tables`. A galaxy whose image cannot be read
is skipped and reported (id, source, reason), never silently: predicted + skipped = inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gz_experiments.config import Sampling
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.inputs import FileAccess, resolve_inputs
from gz_experiments.prediction.sampling import Sampler
from gz_experiments.prediction.tables import SKIPPED_COLUMNS, output_columns, summarise
from gz_experiments.prediction.writer import TableWriter, check_output_path, output_format_for
from gz_experiments.progress import show_progress


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
    sampling: Sampling,
    *,
    split: str = "",
    keep_concentrations: bool = True,
    progress: bool = False,
    access: FileAccess | None = None,
    n_volunteers: int | None = None,
) -> Iterator[pd.DataFrame]:
    """One table chunk per batch; unreadable galaxies go to `report.skipped` as they are met.
    `n_volunteers` adds the acquisition columns (prediction.tables) for that many volunteers.

    Bad input fails here, before any image is decoded or the model traced.
    """
    inputs = resolve_inputs(source, spec, split, access)
    sampler = Sampler(model, sampling)
    return _chunks(inputs, sampler, spec, report, keep_concentrations, progress, n_volunteers)


def _chunks(inputs, sampler, spec, report, keep_concentrations, progress, n_volunteers=None):
    from tqdm import tqdm

    with tqdm(
        total=inputs.total, unit="galaxy", disable=not show_progress(progress), file=sys.stderr
    ) as bar:
        for batch in inputs.batches(sampler.sampling.batch_size):
            report.skipped.extend(batch.skipped)
            bar.update(len(batch.ids) + len(batch.skipped))
            if not batch.ids:
                continue
            concentrations = sampler(batch.images, batch.ids)
            report.n_predicted += len(batch.ids)
            yield summarise(
                batch.ids, concentrations, spec.schema, keep_concentrations, n_volunteers
            )


def predict(
    model, spec: ModelSpec, source: Any, sampling: Sampling | None = None, *, split: str = "",
    progress: bool = False, n_volunteers: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The whole table in memory (columns: prediction.tables; acquisition columns for
    `n_volunteers` if given); the skipped galaxies are in `df.attrs["skipped"]` (a list of
    {id_str, source, reason}; plain data, so the table still writes to parquet) and counted on
    stderr."""
    sampling = sampling or Sampling()
    report = PredictionReport(output=None)
    chunks = list(
        iter_predictions(
            model, spec, source, report, sampling, split=split, progress=progress,
            n_volunteers=n_volunteers,
        )
    )  # fmt: skip
    columns = output_columns(spec.schema, sampling.n_samples, acquisition=n_volunteers is not None)
    df = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=columns)
    warn_skipped(report)
    df.attrs["skipped"] = report.skipped_frame().to_dict("records")
    return df


def predict_to_file(
    model, spec: ModelSpec, source: Any, output: str | Path, sampling: Sampling, *,
    output_format: str = "", split: str = "", progress: bool = True,
    access: FileAccess | None = None, n_volunteers: int | None = None,
) -> PredictionReport:  # fmt: skip
    """Stream the table to `output` (parquet, or csv by suffix or `output_format`), with the
    acquisition columns for `n_volunteers` if given."""
    output = Path(output)
    fmt = output_format_for(output, output_format)
    check_output_path(output)
    report = PredictionReport(output=output)
    chunks = iter_predictions(
        model, spec, source, report, sampling, split=split, progress=progress, access=access,
        n_volunteers=n_volunteers,
    )  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    columns = output_columns(spec.schema, sampling.n_samples, acquisition=n_volunteers is not None)
    with TableWriter(output, fmt, columns) as write:
        for chunk in chunks:
            write(chunk)
    warn_skipped(report)
    return report


def warn_skipped(report: PredictionReport) -> None:
    if report.skipped:
        first = report.skipped[0]
        print(
            f"skipped {len(report.skipped)} of {report.n_inputs} galaxies whose image could not "
            f"be read (first: {first[1]}: {first[2]})",
            file=sys.stderr,
        )
