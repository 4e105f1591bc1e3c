"""Predictions streamed over any number of galaxies, and the `predict` step as a function.

    df = predict(model, spec, "images/", Sampling(n_samples=5))          # a table in memory
    report = predict_to_file(model, spec, "catalog.csv", "out.parquet", sampling)
    result = run_predict(config, model, spec, work_dir)                   # the step (no MLflow)

Memory stays flat in the number of galaxies: each batch's rows are appended to the output as
soon as they are computed. Columns: see `prediction.tables`. A galaxy whose image cannot be read
is skipped and reported (id, source, reason), never silently: predicted + skipped = inputs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gz_experiments.atomic import write_table
from gz_experiments.config import PredictConfig, Sampling
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.inputs import FileAccess, check_model_and_input, resolve_inputs
from gz_experiments.prediction.sampling import Sampler
from gz_experiments.prediction.tables import SKIPPED_COLUMNS, output_columns, summarise
from gz_experiments.prediction.writer import TableWriter, check_output_path, output_format_for
from gz_experiments.progress import show_progress

SKIPPED_FILE = "skipped.csv"


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


# ---- the predict step -----------------------------------------------------------------------


@dataclass
class PredictResult:
    config: PredictConfig
    spec: ModelSpec
    report: PredictionReport
    table: Path  # the predictions file (config.output, or one in the work folder)
    skipped_table: Path
    seconds: float

    @property
    def galaxies_per_second(self) -> float:
        return self.report.n_inputs / max(self.seconds, 1e-9)

    def summary(self) -> str:
        where = f" -> {self.config.output}" if self.config.output else ""
        return (
            f"predicted {self.report.n_predicted} galaxies, skipped {len(self.report.skipped)} "
            f"(listed in {SKIPPED_FILE}){where}"
        )


def check_inputs(config: PredictConfig) -> None:
    """Fail on a missing model or input before opening a run or loading TensorFlow."""
    spark = config.engine == "spark"  # inputs may be URIs Spark reads; the output is a folder
    check_model_and_input(config.model_uri, config.input, "predict on", local=not spark)
    if spark:
        from gz_experiments.prediction.spark import check_spark_inputs

        check_spark_inputs(config)
        return
    output_format_for(config.output, config.output_format)
    if config.output:
        check_output_path(config.output)


def run_predict(
    config: PredictConfig, model, spec: ModelSpec, work_dir: str | Path
) -> PredictResult:
    """Predict `config.input` to `config.output` (or `<work_dir>/predictions.<fmt>`) and list
    the skipped galaxies in `<work_dir>/skipped.csv`. engine=spark: `model` is a
    tracking.spark.SparkModel and the output a parquet folder (prediction.spark)."""
    if config.engine == "spark":
        from gz_experiments.prediction.spark import run_predict_spark

        return run_predict_spark(config, model, spec, work_dir)
    fmt = output_format_for(config.output, config.output_format)
    output = Path(config.output) if config.output else Path(work_dir) / f"predictions.{fmt}"
    start = time.perf_counter()
    report = predict_to_file(
        model, spec, config.input, output, config.sampling, output_format=fmt,
        split=config.split, access=FileAccess(max_pixels=config.max_image_pixels),
        n_volunteers=config.n_volunteers if config.acquisition_columns else None,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    skipped = Path(work_dir) / SKIPPED_FILE
    write_table(report.skipped_frame(), skipped)
    return PredictResult(config, spec, report, output, skipped, seconds)
