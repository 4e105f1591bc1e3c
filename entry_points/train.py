"""Train a Galaxy Zoo model and track it in MLflow (metrics per epoch and question, checkpoints,
plots, the best model as an MLflow model named "model").

Exact commands (inside the venv):

    mlflow run . -e train --env-manager local                       # default dataset, auto preset
    mlflow run . -e train -P preset=debug --env-manager local       # seconds
    mlflow run . -e train -P shard_dir=shards/gzd5 -P epochs=50 --env-manager local
    mlflow run . -e train -P resume_run_id=<run id> --env-manager local

Without shard_dir the embedded default dataset is simulated and sharded once (cached in
$GZ_CACHE_DIR or ~/.cache/gz_experiments). With resume_run_id the run continues from its last
checkpoint with its own config. Any field below can be given as -P name=value.
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import TrainConfig
from gz_experiments.experiment import run_training


@entry_point
def main(argv=None):
    config = parse_config(TrainConfig, argv, __doc__)
    result = run_training(config)
    print(
        f"run {result.run_id}: best val loss {result.best_val_loss:.4f} at epoch "
        f"{result.best_epoch} of {result.epochs_run} (baseline {result.baseline_val_loss:.4f})"
    )


if __name__ == "__main__":
    main()
