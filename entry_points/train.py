"""Train a Galaxy Zoo model and track it in MLflow (metrics per epoch and question, checkpoints,
plots, system metrics, the shards as dataset inputs, the best model as an MLflow model "model").

Exact commands (inside the venv):

    mlflow run . -e train --env-manager local                       # default dataset, auto preset
    mlflow run . -e train -P preset=debug --env-manager local       # seconds
    mlflow run . -e train -P shard_dir=shards/gzd5 -P epochs=50 --env-manager local
    mlflow run . -e train -P resume_run_id=<run id> --env-manager local

Without shard_dir the embedded default dataset is simulated and sharded once (cached in
$GZ_CACHE_DIR or ~/.cache/gz_experiments). With resume_run_id the run continues from its last
checkpoint with its own config. Any field below can be given as -P name=value.
"""

from gz_experiments.cli import summary_main, with_run_id
from gz_experiments.config import TrainConfig


def run(config: TrainConfig, *, callbacks=(), work_dir=None, nested: bool = False):
    """Train in an MLflow run (the active one, a resumed one, or a new one) and log it all."""
    from gz_experiments.tracking.runs import refuse_mlflow_run_on_workers
    from gz_experiments.training.distributed import is_chief, start_multi_worker

    if not is_chief():  # before the strategy, which waits until every worker has joined
        refuse_mlflow_run_on_workers("train")
    start_multi_worker()  # with a multi-worker TF_CONFIG, before TensorFlow runs anything
    from gz_experiments.tracking.train import (
        log_train,
        resumed_config,
        train_run,
        worker_scratch,
    )
    from gz_experiments.training.run import images_per_epoch, run_train, training_data

    if config.resume_run_id:
        config = resumed_config(config)
    if not is_chief():  # a non-chief worker of a multi-worker job trains but does not log
        with worker_scratch(config, work_dir) as folder:
            return run_train(config, training_data(config), work_dir=folder, callbacks=callbacks)
    with train_run(config, work_dir=work_dir, nested=nested) as tracker:
        manifest = training_data(config)
        tracker.log_data(manifest)
        logger = tracker.epoch_logger(images_per_epoch(config, manifest))
        result = run_train(
            config, manifest, work_dir=tracker.work_dir, callbacks=[logger, *callbacks]
        )
        log_train(result)
    return result


main = summary_main(TrainConfig, run, __doc__, show=with_run_id)


if __name__ == "__main__":
    main()
