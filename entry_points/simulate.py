"""Simulate the embedded default dataset: galaxy images + volunteers walking the gzd5 tree.

Writes an ordinary catalog folder (catalog.csv, images/, truth.parquet, simulation.json; see
gz_experiments/simulate/dataset.py) and logs the config, galaxies per true class, mean votes per
question, a preview grid and the catalog + truth tables to MLflow. Deterministic for a seed,
whatever n_workers. out_dir "" = the default-dataset cache ($GZ_CACHE_DIR, else
~/.cache/gz_experiments), which `train` reuses when it is given no shard_dir.

Exact commands:
    mlflow run . -e simulate -P preset=cpu -P n_galaxies=5000 -P img_size=128 -P seed=0 -P out_dir=data/sim
    python -m entry_points.simulate --preset debug --out-dir /tmp/gz-sim
"""

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import SimulateConfig


@entry_point
def main(argv=None):
    config = parse_config(SimulateConfig, argv, __doc__)
    from gz_experiments.simulate.dataset import TRUTH, check_config, simulate, summarize
    from gz_experiments.simulate.preview import preview_grid
    from gz_experiments.tracking import runs

    check_config(config)  # before a run is opened: bad input leaves no failed run behind
    with runs.step_run("simulate", config):
        catalog = simulate(config)
        runs.set_tags({"catalog": str(catalog.resolve())})
        runs.log_metrics(summarize(catalog))
        runs.log_figure(preview_grid(catalog), "preview.png")
        runs.log_file(catalog, "dataset")
        runs.log_file(catalog.parent / TRUTH, "dataset")
    print(catalog)
    return catalog


if __name__ == "__main__":
    main()
