"""Batch prediction to a file, batch by batch, and the `predict` step that logs it to MLflow.

    report = predict_to_file(model, spec, "catalog.csv", "out/predictions.parquet", n_samples=5)
    report = run_prediction(PredictConfig.resolve("cpu", model_uri=..., input=...))  # in a run

Memory stays flat in the number of galaxies: each batch's rows are appended to the output
(a pyarrow ParquetWriter row group, or CSV lines) as soon as they are computed. Columns: see
`gz_experiments.predict`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gz_experiments.config import PredictConfig
from gz_experiments.errors import UserError
from gz_experiments.models import ModelSpec
from gz_experiments.predict import (
    MC_MODES,
    PredictionReport,
    iter_predictions,
    output_columns,
    warn_skipped,
)

FORMATS = ("parquet", "csv")
SKIPPED_FILE = "skipped.csv"


def output_format_for(output: str | Path | None, output_format: str = "") -> str:
    fmt = output_format or ("csv" if str(output or "").lower().endswith(".csv") else "parquet")
    if fmt not in FORMATS:
        raise UserError(f"output_format {fmt!r}: use {' or '.join(FORMATS)}")
    return fmt


def predict_to_file(
    model,
    spec: ModelSpec,
    source: Any,
    output: str | Path,
    *,
    output_format: str = "",
    progress: bool = True,
    **options: Any,
) -> PredictionReport:
    """Stream the table to `output` (parquet, or csv by suffix or `output_format`); `options` are
    iter_predictions' (n_samples, mc_mode, batch_size, split, seed). Skipped galaxies are in
    the report, and counted on stderr."""
    output = Path(output)
    fmt = output_format_for(output, output_format)
    n_samples = options.get("n_samples", 5)
    report = PredictionReport(output=output)
    chunks = iter_predictions(model, spec, source, report, progress=progress, **options)
    output.parent.mkdir(parents=True, exist_ok=True)
    with TableWriter(output, fmt, output_columns(spec.get_schema(), n_samples)) as write:
        for chunk in chunks:
            write(chunk)
    warn_skipped(report)
    return report


class TableWriter:
    """Context manager appending DataFrame chunks to one parquet or csv file (header once)."""

    def __init__(self, path: Path, fmt: str, columns: list[str]):
        self.path, self.fmt, self.columns = path, fmt, columns
        self.parquet = None

    def __enter__(self):
        if self.fmt == "csv":
            pd.DataFrame(columns=self.columns).to_csv(self.path, index=False)
        return self.write

    def write(self, chunk: pd.DataFrame) -> None:
        if self.fmt == "csv":
            chunk.to_csv(self.path, mode="a", header=False, index=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.path, table.schema)
        self.parquet.write_table(table)

    def __exit__(self, exc_type, *exc_info) -> None:
        if self.parquet is not None:
            self.parquet.close()
        elif self.fmt == "parquet" and exc_type is None:  # nothing readable: an empty typed table
            empty = {c: pd.Series(dtype=str if c == "id_str" else np.float32) for c in self.columns}
            pd.DataFrame(empty).to_parquet(self.path, index=False)


def check_config(config: PredictConfig) -> None:
    """Fail on a missing model or input before opening a run or loading TensorFlow."""
    if not config.model_uri:
        raise UserError(
            "no model given: pass model_uri=models:/<name>@<alias>, models:/<name>/<version>, "
            "runs:/<run_id>/model or a local model folder"
        )
    if not config.input:
        raise UserError(
            "no input given: pass input=<folder of png/jpg images | catalog.csv/.parquet with "
            "file_loc | shard folder>"
        )
    if config.mc_mode not in MC_MODES:
        raise UserError(f"mc_mode {config.mc_mode!r} is not one of {', '.join(MC_MODES)}")
    if config.n_samples < 1:
        raise UserError(f"n_samples must be at least 1, got {config.n_samples}")
    output_format_for(config.output, config.output_format)


def run_prediction(config: PredictConfig) -> PredictionReport:
    """The predict step inside an active MLflow run: load the model, stream predictions to
    `config.output` (if given), log them as `predictions.<fmt>` and `skipped.csv`, and metrics."""
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.runs import log_file, log_metrics, set_tags

    check_config(config)
    model, spec = load_galaxy_model(config.model_uri)
    fmt = output_format_for(config.output, config.output_format)
    with tempfile.TemporaryDirectory(prefix="gz-predict-") as tmp:
        artifact = Path(tmp) / f"predictions.{fmt}"
        output = Path(config.output) if config.output else artifact
        start = time.perf_counter()
        report = predict_to_file(
            model, spec, config.input, output, output_format=fmt, n_samples=config.n_samples,
            mc_mode=config.mc_mode, batch_size=config.batch_size, split=config.split,
            seed=config.seed,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        if output != artifact:
            shutil.copyfile(output, artifact)
        log_file(artifact)
        skipped = Path(tmp) / SKIPPED_FILE
        report.skipped_frame().to_csv(skipped, index=False)
        log_file(skipped)
    log_metrics(
        {
            "n_predicted": report.n_predicted,
            "n_skipped": len(report.skipped),
            "galaxies_per_second": report.n_inputs / max(seconds, 1e-9),
        }
    )
    set_tags({"model_uri": config.model_uri, "input": config.input, "schema": spec.schema["name"]})
    where = f" -> {output}" if config.output else ""
    print(
        f"predicted {report.n_predicted} galaxies, skipped {len(report.skipped)} "
        f"(listed in {SKIPPED_FILE}){where}",
        file=sys.stderr,
    )
    return report
