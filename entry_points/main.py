"""The whole pipeline on the embedded default dataset, each step a child run of this one:
simulate -> shard -> train -> evaluate -> register -> predict. Prints where everything went.

Exact commands (from the repo root, venv active; `make demo` runs the first):

    mlflow run . --env-manager local                           # cpu preset, ~10 min on 2 cores
    mlflow run . -P preset=debug --env-manager local           # a minute: checks the plumbing
    mlflow run . -P extra=train.epochs=5,simulate.seed=1 --env-manager local

A step whose FINISHED run has the same entry point, parameters and git commit is reused, so a
second run only repeats what changed (-P reuse=false runs everything again). env_manager is
passed down to every step.
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import MainConfig
from gz_experiments.pipeline import run_main


@entry_point
def main(argv=None):
    config = parse_config(MainConfig, argv, __doc__)
    print(run_main(config), flush=True)


if __name__ == "__main__":
    main()
