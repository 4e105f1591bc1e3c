r"""Choose which unlabelled galaxies volunteers should classify next (active learning), as an
MLflow run.

Exact command (from the repo root, venv active):

    mlflow run . -e acquire --env-manager local -P model_uri=models:/gz-decals@champion \
        -P input=../shared/data/gzd5_real_128/images -P k=100 -P acquisition=bald

or without MLflow Projects: python -m entry_points.acquire --model-uri ... --input ... --k 100.
acquisition: bald (the expected information gain of the next n_volunteers votes per question,
from the MC-dropout samples; what GZ DECaLS used), entropy (predictive entropy) or random (the
baseline). questions: comma-separated (default: the whole tree), each weighted by how often
volunteers are asked it. The run logs acquisition.parquet (or .csv: rank, id_str, score and
per-question scores, best first), plots/top_galaxies.png and skipped.csv; see
gz_experiments/acquisition/run.py.
"""

from gz_experiments.acquisition.run import check_inputs, run_acquire
from gz_experiments.cli import summary_main
from gz_experiments.config import AcquireConfig


def run(config: AcquireConfig):
    from gz_experiments.tracking.acquire import log_acquire
    from gz_experiments.tracking.runs import model_step

    check_inputs(config)
    return model_step(config, run_acquire, log_acquire)


main = summary_main(AcquireConfig, run, __doc__)

if __name__ == "__main__":
    main()
