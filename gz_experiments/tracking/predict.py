"""Logging a predict result: the table and the skipped galaxies as artifacts, counts, speed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlflow

from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_file, log_file_as, log_metrics, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.prediction.run import PredictResult

ARTIFACT = "predictions"  # predictions.parquet / .csv (engine=spark: predictions/) at the root


def log_predict(result: PredictResult) -> None:
    report = result.report
    standard = f"{ARTIFACT}{result.table.suffix}"
    if result.table.is_dir():  # engine=spark: a folder of parquet part files -> predictions/
        mlflow.log_artifacts(str(result.table), ARTIFACT)
    else:
        log_file_as(result.table, standard)
    log_file(result.skipped_table)
    log_metrics(
        {
            "n_predicted": report.n_predicted,
            "n_skipped": len(report.skipped),
            "n_inputs": report.n_inputs,
            "galaxies_per_second": result.galaxies_per_second,
        }
    )
    set_tags(
        {
            "model_uri": result.config.model_uri,
            "input": result.config.input,
            "schema": result.spec.schema.name,
        }
    )
    describe_outcome(result.summary())
