"""Choose which unlabelled galaxies volunteers should classify next (active learning), as an
MLflow run.

Exact command (from the repo root, venv active):

    mlflow run . -e acquire --env-manager local -P model_uri=models:/gz-decals@champion \
        -P input=../shared/data/gzd5_real_128 -P k=100 -P acquisition=bald

or without MLflow Projects: python -m entry_points.acquire --model-uri ... --input ... --k 100.
acquisition: bald (the expected information gain of the next n_volunteers votes per question,
from the MC-dropout samples; what GZ DECaLS used), entropy (predictive entropy) or random (the
baseline). questions: comma-separated (default: the whole tree), each weighted by how often
volunteers are asked it. The run logs acquisition.parquet (or .csv: rank, id_str, score and
per-question scores, best first), plots/top_galaxies.png and skipped.csv; see
gz_experiments/acquisition/run.py.
"""

import tempfile

from gz_experiments.acquisition.run import check_inputs, run_acquire
from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import AcquireConfig


def run(config: AcquireConfig):
    from gz_experiments.tracking.acquire import log_acquire
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.runs import step_run

    check_inputs(config)
    model, spec = load_galaxy_model(config.model_uri)
    with step_run(config), tempfile.TemporaryDirectory(prefix="gz-acquire-") as work_dir:
        result = run_acquire(config, model, spec, work_dir)
        log_acquire(result)
    return result


@entry_point
def main(argv=None):
    import sys

    result = run(parse_config(AcquireConfig, argv, __doc__))
    print(result.summary(), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
