r"""Evaluate a model on a labelled shard split with the GZ DECaLS paper's protocol.

Exact command (from the repo root, venv active):

    mlflow run . -e evaluate --env-manager local -P model_uri=runs:/<train run id>/model \
        -P shard_dir=<shard folder> -P split=test

Per question (galaxies where >= half of the volunteers were asked it): accuracy and weighted
precision / recall / F1 of the most-voted answer, on all and on confident galaxies (a true
fraction > 0.8); vote-fraction MAE / RMSE for galaxies with >= 20 votes; coverage of the
predicted vote-count sets. With the simulator's truth.parquet beside the shards' catalog (or
-P truth=...), also the MAE against the true probabilities next to the volunteers' own.
Logged as metrics `<split>/<question>/<metric>` plus plots and tables under evaluation/<split>/.
The MC-dropout samples come from (seed, galaxy id): the same seed gives the same metrics.
"""

from gz_experiments.cli import summary_main
from gz_experiments.config import EvaluateConfig
from gz_experiments.evaluation.run import check_inputs, run_evaluate


def run(config: EvaluateConfig):
    from gz_experiments.tracking.evaluate import log_evaluate
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.runs import step_run

    check_inputs(config)
    model, spec = load_galaxy_model(config.model_uri)
    with step_run(config):
        result = run_evaluate(config, model, spec)
        log_evaluate(result)
    return result


def show(result) -> str:
    """The per-question table, then the one-line summary."""
    from gz_experiments.evaluation.plots import markdown_table, summary_table

    return markdown_table(summary_table(result.evaluation)) + result.summary()


main = summary_main(EvaluateConfig, run, __doc__, show=show)


if __name__ == "__main__":
    main()
