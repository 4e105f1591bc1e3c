"""A real `tune` invocation whose trials are a fast fake instead of Keras training (tests only).

    python -m tests.fake_tune_worker --preset debug --storage URL --n-trials 3 [--n-workers 2]

Same flags as `entry_points.tune`; it exercises the study, storage, workers and MLflow runs
without TensorFlow, so several workers fit in a test's time budget.
"""

import time

import mlflow

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import TuneConfig
from gz_experiments.tracking.runs import step_run
from gz_experiments.tuning import loggable, tune


def fake_train(train_config, report) -> float:
    """A loss curve set by the sampled dropout and learning rate, falling with the epochs."""
    base = train_config.dropout * 4 + train_config.learning_rate * 100
    curve = [base + 1 / epoch for epoch in range(1, train_config.epochs + 1)]
    for epoch, value in enumerate(curve):
        time.sleep(0.1)  # long enough for the workers' trials to interleave
        mlflow.log_metric("val_loss", value, step=epoch + 1)
        report(epoch, {"val_loss": value})
    return min(curve)


@entry_point
def main(argv=None):
    config = parse_config(TuneConfig, argv, __doc__)
    with step_run("tune", loggable(config)) as run:
        tune(config, run.info.run_id, train_fn=fake_train)


if __name__ == "__main__":
    main()
