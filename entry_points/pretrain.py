r"""Pretrain one model on several campaigns at once: combine, shard, train, evaluate and register, each a child run.

Zoobot's GZ Evo in one command: catalogs of different campaigns, each on its own tree, become
one catalog on their derived tree (questions suffixed -<campaign>), which is sharded, trained on
with every campaign weighted the same (campaign_balance=equal), evaluated per campaign on its test
split and registered. The registered model is an ordinary one: finetune, embed, predict and serve
take it. Exact commands (from the repo root, venv active):

    gz pretrain --preset real --out /tmp/gz-pretrain \
        --catalogs ../shared/data/gz1_sdss_64/catalog.csv,../shared/data/gzd5_real_128/catalog.csv \
        --trees gz1,gzd5 --class-columns gz1=gz1_class_name --missing-questions zero \
        --fill-missing-votes true --extra shard.img_size=64,train.architecture=small_cnn
    mlflow run . -e pretrain --env-manager local -P out=/tmp/gz-pretrain \
        -P catalogs=data/gz2/catalog.parquet,data/gzd5/catalog.parquet   # trees: auto (ingest)

A step whose FINISHED run has the same entry point, parameters and code version is reused (so a
second run only repeats what changed; -P reuse=false runs everything again). `extra` passes
per-step parameters (train.epochs=30,shard.img_size=128). The parent run carries the per-campaign
test metrics and summary.txt, which ends with the finetune command.
"""

import time

from gz_experiments.cli import summary_main
from gz_experiments.config import PretrainConfig


def run(config: PretrainConfig, project_dir: str = ".") -> str:
    from gz_experiments.pretrain import plan_text, run_pretrain, summary_text
    from gz_experiments.tracking.pretrain import log_pretrain
    from gz_experiments.tracking.projects import ProjectRunner, ui_command
    from gz_experiments.tracking.runs import step_run

    print(plan_text(config), flush=True)
    start = time.monotonic()
    with step_run(config) as parent:
        runner = ProjectRunner(project_dir, config.env_manager, reuse=config.reuse)
        result = run_pretrain(config, runner)
        text = summary_text(result, ui_command=ui_command(), parent_run_id=parent.info.run_id,
                            elapsed=time.monotonic() - start)  # fmt: skip
        log_pretrain(result, text)
    return text


main = summary_main(PretrainConfig, run, __doc__, show=str)  # run returns the summary text


if __name__ == "__main__":
    main()
