"""The `predict` step as a function: `run_predict(config, model, spec, work_dir)` (no MLflow).

Locally it streams through `prediction.stream`; engine=spark runs the same columns through a
Spark UDF (`prediction.spark`). Either way the skipped galaxies are listed beside the output.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gz_experiments.atomic import write_table
from gz_experiments.config import PredictConfig
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.inputs import FileAccess, check_model_and_input
from gz_experiments.prediction.stream import PredictionReport, predict_to_file, warn_skipped
from gz_experiments.prediction.writer import check_output_path, output_format_for

SKIPPED_FILE = "skipped.csv"


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


def run_predict_spark(config: PredictConfig, model, spec: ModelSpec, work_dir) -> PredictResult:
    """The predict step on Spark: `config.output` (or `<work_dir>/predictions`) becomes a parquet
    folder; the skipped galaxies are listed in `<work_dir>/skipped.csv`, as locally."""
    from gz_experiments.prediction.spark import predict_spark, spark_session

    output = Path(config.output) if config.output else Path(work_dir) / "predictions"
    if getattr(model, "upgraded", False):
        print(
            f"note: {config.model_uri} was logged before on_unreadable existed; its local copy "
            f"got the current signature (the code is the installed package's either way)",
            file=sys.stderr,
        )
    start = time.perf_counter()
    with spark_session(config.spark_master, config.spark_conf) as spark:
        report = predict_spark(
            spark, model, spec, config.input, output, config.sampling,
            acquisition=config.acquisition_columns, max_pixels=config.max_image_pixels,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    warn_skipped(report)
    skipped = Path(work_dir) / SKIPPED_FILE
    write_table(report.skipped_frame(), skipped)
    return PredictResult(config, spec, report, output, skipped, seconds)
