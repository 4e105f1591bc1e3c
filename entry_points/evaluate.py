"""Evaluate a model on a labelled shard split with the GZ DECaLS paper's protocol.

Exact command (from the repo root, venv active):

    mlflow run . -e evaluate --env-manager local -P model_uri=runs:/<train run id>/model \
        -P shard_dir=<shard folder> -P split=test

Per question (galaxies where >= half of the volunteers were asked it): accuracy and weighted
precision / recall / F1 of the most-voted answer, on all and on confident galaxies (a true
fraction > 0.8); vote-fraction MAE / RMSE for galaxies with >= 20 votes; coverage of the
predicted vote-count sets. With the simulator's truth.parquet beside the shards' catalog (or
-P truth=...), also the MAE against the true probabilities next to the volunteers' own.
Logged as metrics `<split>/<question>/<metric>` plus plots and tables under evaluation/<split>/.
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import EvaluateConfig
from gz_experiments.evaluation_plots import markdown_table, summary_table
from gz_experiments.tracking.evaluation import evaluate_model
from gz_experiments.tracking.runs import step_run


@entry_point
def main(argv=None):
    config = parse_config(EvaluateConfig, argv, __doc__)
    with step_run("evaluate", config):
        evaluation = evaluate_model(config)
    print(markdown_table(summary_table(evaluation)), end="")
    for key, value in evaluation.overall.items():
        print(f"{config.split}/{key}: {value:.4f}")


if __name__ == "__main__":
    main()
