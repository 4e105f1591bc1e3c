"""Register the best training run's model and move the `champion` alias if it is better.

Exact command (from the repo root, venv active):

    mlflow run . -e register --env-manager local -P experiment=<experiment name> -P name=gz-decals

The best run is the FINISHED run tagged gz.step=train with a logged model and the lowest
best_val_loss (or -P run_id=<id>). The alias moves only if that loss beats the current
champion's, or with -P force=true. Prints the commands that load and serve the champion.
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import RegisterConfig
from gz_experiments.tracking.registry import register_best, usage_text
from gz_experiments.tracking.runs import set_tags, step_run


@entry_point
def main(argv=None):
    config = parse_config(RegisterConfig, argv, __doc__)
    with step_run("register", config):
        result = register_best(
            config.experiment, config.name, config.run_id or None, config.alias, config.force
        )
        set_tags(
            {
                "registered_model": result.name,
                "model_version": result.version,
                "source_run_id": result.run_id,
                "alias_moved": result.alias_moved,
            }
        )
    print(usage_text(result))


if __name__ == "__main__":
    main()
