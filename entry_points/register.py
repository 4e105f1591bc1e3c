"""Register the best training run's model and move the `champion` alias if it is better.

Exact command (from the repo root, venv active):

    mlflow run . -e register --env-manager local -P experiment=<experiment name> -P name=gz-decals

The best run is the FINISHED run tagged gz.step=train with a logged model and the lowest
best_val_loss (or -P run_id=<id>). The alias moves only if that loss beats the current
champion's, or with -P force=true. Prints the commands that load and serve the champion.
"""

from gz_experiments.cli import summary_main
from gz_experiments.config import RegisterConfig


def run(config: RegisterConfig):
    from gz_experiments.tracking.registry import log_register, run_register
    from gz_experiments.tracking.runs import step_run

    with step_run(config):
        result = run_register(config)
        log_register(result)
    return result


def show(result) -> str:
    from gz_experiments.tracking.registry import usage_text

    return usage_text(result)


main = summary_main(RegisterConfig, run, __doc__, show=show)


if __name__ == "__main__":
    main()
