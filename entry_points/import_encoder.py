"""Import a published encoder (zoobot / timm checkpoint, or Keras weights) from local files.

Exact commands (inside the venv; nothing is downloaded, see the README for getting weights):

    mlflow run . -e import_encoder --env-manager local \
        -P source=~/.cache/huggingface/hub/models--mwalmsley--zoobot-encoder-convnext_nano \
        -P img_size=300 -P name=zoobot-convnext-nano -P alias=imported
    mlflow run . -e finetune --env-manager local -P model_uri=models:/zoobot-convnext-nano@imported \
        -P shard_dir=shards/rings -P mode=last_n_blocks -P n_blocks=2
    mlflow run . -e import_encoder --env-manager local -P source=efficientnetb0.weights.h5 \
        -P architecture=efficientnetb0 -P name=effnet-imagenet

The checkpoint's architecture comes from config.json beside it (timm's hub format) or from
`architecture`. The result is a galaxy model (augment -> encoder -> Dirichlet head for `schema`)
whose head is untrained: finetune it (which replaces the head) or embed with it. `img_size` must
be the stored side of the shards it will be finetuned on; `greyscale` for greyscale shards.
Any field below can be given as -P name=value.
"""

import tempfile

from gz_experiments.cli import summary_main, with_run_id
from gz_experiments.config import ImportEncoderConfig


def run(config: ImportEncoderConfig):
    from gz_experiments.encoders.run import check_request, run_import_encoder
    from gz_experiments.tracking.import_encoder import log_import_encoder
    from gz_experiments.tracking.runs import step_run

    check_request(config)
    with step_run(config), tempfile.TemporaryDirectory(prefix="gz-import-") as work_dir:
        result = run_import_encoder(config, work_dir)
        log_import_encoder(result)
    return result


main = summary_main(ImportEncoderConfig, run, __doc__, show=with_run_id)

if __name__ == "__main__":
    main()
