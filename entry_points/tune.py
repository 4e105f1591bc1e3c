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
the `champion` alias. A worker that dies costs only its running trial (marked FAILED).
"""

from gz_experiments.cli import summary_main
from gz_experiments.config import RegisterConfig, TuneConfig


def run(config: TuneConfig, train_fn=None, pruner=None):
    """The study under one parent run; `train_fn` defaults to real training of each trial and
    `pruner` to the config's (tests pass fakes)."""
    from entry_points.train import run as train
    from gz_experiments.tracking.runs import set_tags, step_run
    from gz_experiments.tracking.tune import MlflowTrials, log_tune
    from gz_experiments.tuning.plots import close
    from gz_experiments.tuning.search import check_inputs, check_outcome, loggable, run_tune
    from gz_experiments.tuning.trial import training_trial

    check_inputs(config)  # a wrong storage fails here, before any MLflow run is opened
    with step_run(loggable(config)) as parent:
        trials = MlflowTrials(parent.info.run_id, config.study_name)
        result = run_tune(config, trials, train_fn or training_trial(train), pruner)
        try:
            log_tune(result)
        finally:
            close(result.figures)
        check_outcome(result)
        if config.register_best and result.best is not None:
            from gz_experiments.tracking.registry import run_register

            registration = run_register(
                RegisterConfig.resolve(
                    config.preset, name=config.model_name, run_id=result.best["run_id"]
                )
            )
            set_tags(
                {
                    "registered_version": registration.version_uri,
                    "alias_moved": registration.alias_moved,
                }
            )
            print(f"registered {registration.version_uri}: {registration.reason}")
    return result


main = summary_main(TuneConfig, run, __doc__, show=lambda result: result.summary_text())


if __name__ == "__main__":
    main()
