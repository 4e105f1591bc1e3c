"""A real `tune` invocation whose trials are a fast fake instead of Keras training (tests only).

    python -m tests.fake_tune_worker --preset debug --storage URL --n-trials 3 [--n-workers 2]

Same flags as `entry_points.tune`; it exercises the study, storage, workers and MLflow runs
without TensorFlow, so several workers fit in a test's time budget.
"""

import os
import time

import mlflow

from entry_points.tune import run
from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import TuneConfig


def fake_train(train_config, report) -> float:
    """A loss curve set by the sampled dropout and learning rate, falling with the epochs."""
    base = train_config.dropout * 4 + train_config.learning_rate * 100
    curve = [base + 1 / epoch for epoch in range(1, train_config.epochs + 1)]
    for epoch, value in enumerate(curve):
        # long enough for the workers' trials to interleave (a test killing one asks for more)
        time.sleep(float(os.environ.get("FAKE_EPOCH_SECONDS", "0.1")))
        mlflow.log_metric("val_loss", value, step=epoch + 1)
        report(epoch, {"val_loss": value})
    return min(curve)


@entry_point
def main(argv=None):
    result = run(parse_config(TuneConfig, argv, __doc__), train_fn=fake_train)
    print(result.summary_text())


if __name__ == "__main__":
    main()
