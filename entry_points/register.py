"""Register the best training run's model and move the `champion` alias if it is better.

Exact command (from the repo root, venv active):

    mlflow run . -e register --env-manager local -P experiment=<experiment name> -P name=gz-decals

The best run is the FINISHED run tagged gz.step=train with a logged model and the lowest
best_val_loss (or -P run_id=<id>). The alias moves only if that loss beats the current
champion's, or with -P force=true. Prints the commands that load and serve the champion.
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import RegisterConfig


def run(config: RegisterConfig):
    from gz_experiments.tracking.registry import log_register, register_best
    from gz_experiments.tracking.runs import step_run

    with step_run(config):
        result = register_best(config)
        log_register(result)
    return result


@entry_point
def main(argv=None):
    from gz_experiments.tracking.registry import usage_text

    result = run(parse_config(RegisterConfig, argv, __doc__))
    print(usage_text(result))
    return result


if __name__ == "__main__":
    main()
