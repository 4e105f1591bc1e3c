r"""Finetune a trained Galaxy Zoo model on a new tree and new shards, as an MLflow run.

Exact commands (inside the venv):

    mlflow run . -e finetune --env-manager local -P model_uri=models:/gz-decals@champion \
        -P shard_dir=shards/rings -P mode=all -P preset=cpu
    mlflow run . -e finetune --env-manager local -P model_uri=runs:/<run id>/model \
        -P shard_dir=shards/rings -P schema=rings.yaml -P mode=last_n_blocks -P n_blocks=2
    mlflow run . -e finetune --env-manager local -P resume_run_id=<run id>

The parent's encoder is kept, the head is replaced by a new Dirichlet head for the shards' tree;
mode frozen trains the head only, last_n_blocks also the encoder's last n_blocks blocks, all
everything (encoder block d from the top at learning_rate * layer_decay^d). The shards must store
images at the parent's img_size, in channels it reads. The run logs what `train` logs (per-epoch
and per-question metrics, checkpoints, resume, the best model as "model") and the parent's
lineage as gz.parent_* tags. Any field below can be given as -P name=value.
"""

from gz_experiments.cli import summary_main, with_run_id
from gz_experiments.config import FinetuneConfig


def run(config: FinetuneConfig, *, callbacks=()):
    """Finetune in an MLflow run (the active one, a resumed one, or a new one) and log it all."""
    from gz_experiments.tracking.runs import refuse_mlflow_run_on_workers
    from gz_experiments.training.distributed import is_chief, start_multi_worker

    if not is_chief():  # before the strategy, which waits until every worker has joined
        refuse_mlflow_run_on_workers("finetune")
    start_multi_worker()  # with a multi-worker TF_CONFIG, before TensorFlow runs anything
    from gz_experiments.tracking.finetune import (
        finetune_run,
        log_finetune,
        parent_lineage,
        resumed,
    )
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.train import worker_scratch
    from gz_experiments.training.finetune import check_inputs, check_parent, run_finetune
    from gz_experiments.training.run import images_per_epoch

    source = config.model_uri
    if config.resume_run_id:
        config, source = resumed(config)
    manifest = check_inputs(config)
    lineage = parent_lineage(source)
    parent, parent_spec = load_galaxy_model(lineage.source)
    check_parent(config, parent, parent_spec, manifest)
    if not is_chief():  # a non-chief worker of a multi-worker job trains but does not log
        with worker_scratch(config) as work_dir:
            return run_finetune(config, parent, parent_spec, manifest, work_dir, list(callbacks))
    with finetune_run(config, lineage, parent_spec) as tracker:
        tracker.log_data(manifest)
        logger = tracker.epoch_logger(images_per_epoch(config, manifest))
        result = run_finetune(
            config, parent, parent_spec, manifest, tracker.work_dir, [logger, *callbacks]
        )
        log_finetune(result)
    return result


main = summary_main(FinetuneConfig, run, __doc__, show=with_run_id)


if __name__ == "__main__":
    main()
