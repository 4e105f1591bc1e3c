"""Predict Galaxy Zoo vote fractions with MC dropout, as an MLflow run.

Exact command (from the repo root, venv active):

    mlflow run . -e predict --env-manager local -P model_uri=models:/gz-decals@champion \
        -P input=../shared/data/gzd5_real_128 -P output=predictions.parquet

model_uri: models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model, or a local
model folder. input: a folder of png/jpg images, a .csv/.parquet catalog with file_loc (and
id_str), or a shard folder (manifest.json). The run logs predictions.parquet (or .csv) and
skipped.csv (galaxies whose image could not be read); output columns are documented in
gz_experiments/predict.py. mc_mode=head (default) runs the backbone once and the dropout head
n_samples times; mc_mode=full repeats whole passes with test-time augmentation.
"""

from gz_experiments.batch_predict import check_config, run_prediction
from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import PredictConfig
from gz_experiments.tracking.runs import step_run


@entry_point
def main(argv=None):
    config = parse_config(PredictConfig, argv, __doc__)
    check_config(config)
    with step_run("predict", config):
        run_prediction(config)


if __name__ == "__main__":
    main()
