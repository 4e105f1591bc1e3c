"""Predict Galaxy Zoo vote fractions with MC dropout, as an MLflow run.

Exact command (from the repo root, venv active):

    mlflow run . -e predict --env-manager local -P model_uri=models:/gz-decals@champion \
        -P input=../shared/data/gzd5_real_128 -P output=predictions.parquet

model_uri: models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model, or a local
model folder. input: a folder of png/jpg images, a .csv/.parquet catalog with file_loc (and
id_str), or a shard folder (manifest.json). The run logs predictions.parquet (or .csv) and
skipped.csv (galaxies whose image could not be read); output columns are documented in
gz_experiments/prediction/tables.py. mc_mode=head (default) runs the encoder once and the
dropout head n_samples times; mc_mode=full repeats whole passes with test-time augmentation.
"""

import tempfile

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import PredictConfig
from gz_experiments.prediction.run import check_inputs, run_predict


def run(config: PredictConfig):
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.predict import log_predict
    from gz_experiments.tracking.runs import step_run

    check_inputs(config)
    model, spec = load_galaxy_model(config.model_uri)
    with step_run(config), tempfile.TemporaryDirectory(prefix="gz-predict-") as work_dir:
        result = run_predict(config, model, spec, work_dir)
        log_predict(result)
    return result


@entry_point
def main(argv=None):
    import sys

    result = run(parse_config(PredictConfig, argv, __doc__))
    print(result.summary(), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
