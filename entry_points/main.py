"""The whole pipeline on the embedded default dataset, each step a child run of this one:
simulate -> shard -> train -> evaluate -> register -> predict. Prints where everything went.

Exact commands (from the repo root, venv active; `make demo` runs the first):

    mlflow run . --env-manager local                           # cpu preset, ~4 min on 2 cores
    mlflow run . -P preset=debug --env-manager local           # a minute or two: the plumbing
    mlflow run . -P extra=train.epochs=5,simulate.seed=1 --env-manager local

A step whose FINISHED run has the same entry point, parameters and code version is reused, so a
second run only repeats what changed (-P reuse=false runs everything again). env_manager is
passed down to every step. The parent run carries the headline metrics and summary.txt.
"""

import time

from gz_experiments.cli import summary_main
from gz_experiments.config import MainConfig


def run(config: MainConfig, project_dir: str = ".") -> str:
    from gz_experiments.pipeline import SPLIT, plan_text, run_pipeline, summary_text
    from gz_experiments.tracking.main import evaluation_table, log_main
    from gz_experiments.tracking.projects import ProjectRunner, ui_command
    from gz_experiments.tracking.runs import step_run

    print(plan_text(config), flush=True)
    start = time.monotonic()
    with step_run(config) as parent:
        runner = ProjectRunner(project_dir, config.env_manager, reuse=config.reuse)
        result = run_pipeline(config, runner)
        text = summary_text(
            result,
            ui_command=ui_command(),
            parent_run_id=parent.info.run_id,
            table=evaluation_table(result.steps["evaluate"], SPLIT),
            elapsed=time.monotonic() - start,
        )
        log_main(result, text)
    return text


main = summary_main(MainConfig, run, __doc__, show=str)  # run returns the summary text


if __name__ == "__main__":
    main()
