"""Simulate the embedded default dataset: galaxy images + volunteers walking the gzd5 tree.

Writes an ordinary catalog folder (catalog.csv, images/, truth.parquet, simulation.json; see
gz_experiments/simulate/dataset.py) and logs the config, galaxies per true class, mean votes per
question, a preview grid and the catalog + truth tables to MLflow. Deterministic for a seed,
whatever n_workers. out_dir "" = the default-dataset cache ($GZ_CACHE_DIR, else
~/.cache/gz_experiments), which `train` reuses when it is given no shard_dir.

Exact commands:
    mlflow run . -e simulate --env-manager local -P preset=cpu -P n_galaxies=5000 -P out_dir=data/sim
    python -m entry_points.simulate --preset debug --out-dir /tmp/gz-sim
    python -m entry_points.simulate --preset debug --image-format fits --out-dir /tmp/gz-sim-fits

--image-format fits writes each galaxy's g, r, z flux (before the colour stretch) as a FITS cube;
shard it with --fits-preset simulator to get exactly the pixels of the PNG dataset.
"""

from gz_experiments.cli import summary_main
from gz_experiments.config import SimulateConfig


def run(config: SimulateConfig):
    # Imported here: render workers re-import this module and should not pay for MLflow.
    from gz_experiments.simulate.dataset import run_simulate
    from gz_experiments.tracking.runs import step_run
    from gz_experiments.tracking.simulate import log_simulate

    with step_run(config):
        result = run_simulate(config)
        log_simulate(result)
    return result


main = summary_main(SimulateConfig, run, __doc__, show=lambda result: result.summary())


if __name__ == "__main__":
    main()
