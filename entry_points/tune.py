"""Hyperparameter search with Optuna over crop fraction, image size, dropout, learning rate and
batch size; one parent MLflow run per invocation, one nested child run per trial.

Exact command (a 3-trial study on the debug preset, a few minutes on a CPU):

    mlflow run . -e tune --env-manager local -P preset=debug -P n_trials=3

Re-running the same command adds trials to the same study (`study_name`, default gz-tune, in
`storage`, default sqlite:///optuna.db in the working dir). Several workers share one study:
`-P n_workers=2` starts two processes here, or start the command on several machines with
`-P storage=postgresql://user@host/db` (password from PGPASSWORD or ~/.pgpass, never in -P:
`mlflow run` logs every -P value). Ranges: e.g. `-P image_size_choices=128,224
-P dropout_range=0.1,0.4`; `-P register_best=true` registers the best trial's model and moves
the `champion` alias.
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import TuneConfig
from gz_experiments.tracking.runs import step_run
from gz_experiments.tuning import load_study, loggable, tune, validate


@entry_point
def main(argv=None):
    config = parse_config(TuneConfig, argv, __doc__)
    validate(config)
    load_study(config)  # a wrong storage fails here, before any MLflow run is opened
    with step_run("tune", loggable(config)) as run:
        summary = tune(config, run.info.run_id)
    best = summary["best"]
    if best is None:
        print(f"study {config.study_name}: no complete trial yet ({summary['counts']})")
    else:
        print(
            f"study {config.study_name}: best trial {best['number']} val_loss {best['value']:.4f}"
        )
        print(f"  params {best['params']}  (MLflow run {best['run_id']})")
    registration = summary.get("registration")
    if registration:
        print(f"registered {registration['version']}: {registration['reason']}")


if __name__ == "__main__":
    main()
