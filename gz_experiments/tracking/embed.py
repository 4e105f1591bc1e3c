"""Logging an embed result: the embeddings table, the reducer, neighbours, anomalies, grids.

Artifacts (at the run's root unless named): `embeddings.parquet`, `skipped.csv`, `pca.joblib`
(the fitted scikit-learn IncrementalPCA, with PCA), `similar.csv` + `similar/<query>.png`,
`anomaly.parquet` + `anomaly/most_unusual.png`. Metrics: `n_embedded`, `n_skipped`, `n_inputs`,
`n_features`, `n_dimensions`, `galaxies_per_second`, `pca_explained_variance`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gz_experiments.tracking.experiment import describe_outcome
from gz_experiments.tracking.runs import log_figure, log_file, log_file_as, log_metrics, set_tags

if TYPE_CHECKING:  # result types only: tracking never runs a step
    from gz_experiments.representation.run import EmbedResult

ARTIFACT = "embeddings.parquet"


def log_embed(result: EmbedResult) -> None:
    report = result.report
    log_file_as(result.table, ARTIFACT)
    log_file(result.skipped_table)
    for path in (report.reducer, result.similar_table, result.anomaly_table):
        if path is not None:
            log_file(path)
    for name, figure in result.figures.items():
        log_figure(figure, name)
    metrics = {
        "n_embedded": report.n_embedded,
        "n_skipped": len(report.skipped),
        "n_inputs": report.n_inputs,
        "n_features": report.n_features,
        "n_dimensions": len(report.columns) - 1,
        "galaxies_per_second": result.galaxies_per_second,
    }
    if report.explained_variance is not None:
        metrics["pca_explained_variance"] = report.explained_variance
    log_metrics(metrics)
    set_tags(
        {
            "model_uri": result.config.model_uri,
            "input": result.config.input,
            "schema": result.spec.schema.name,
            "architecture": result.spec.architecture,
        }
    )
    describe_outcome(result.summary())
