r"""Predict Galaxy Zoo vote fractions with MC dropout, as an MLflow run.

Exact command (from the repo root, venv active):

    mlflow run . -e predict --env-manager local -P model_uri=models:/gz-decals@champion \
        -P input=../shared/data/gzd5_real_128/images -P output=predictions.parquet

model_uri: models:/<name>@<alias>, models:/<name>/<version>, runs:/<run_id>/model, or a local
model folder. input: a folder of images (png, jpg, FITS), a .csv/.parquet catalog with file_loc (and
id_str), or a shard folder (manifest.json). The run logs predictions.parquet (or .csv) and
skipped.csv (galaxies whose image could not be read); output columns are documented in
gz_experiments/prediction/tables.py. mc_mode=head (default) runs the encoder once and the
dropout head n_samples times; mc_mode=full repeats whole passes with test-time augmentation.

On Spark (pip install '.[spark]', Java 17+), the same model as a Spark UDF, to a parquet folder:

    mlflow run . -e predict --env-manager local -P engine=spark -P spark_master='local[2]' \
        -P model_uri=models:/gz-decals@champion \
        -P input=../shared/data/gzd5_real_128/catalog.csv -P output=predictions/

(see gz_experiments/prediction/spark.py; mc_mode=head only; inputs: catalogs, image folders).
"""

import tempfile

from gz_experiments.cli import summary_main
from gz_experiments.config import PredictConfig
from gz_experiments.prediction.run import check_inputs, run_predict


def run(config: PredictConfig):
    from gz_experiments.tracking.predict import log_predict
    from gz_experiments.tracking.runs import step_run

    check_inputs(config)
    with tempfile.TemporaryDirectory(prefix="gz-predict-") as work_dir:
        model, spec = load_model(config, work_dir)
        with step_run(config):
            result = run_predict(config, model, spec, work_dir)
            log_predict(result)
    return result


def load_model(config: PredictConfig, work_dir: str):
    """engine=local: the Keras model in this process; spark: a local copy of the MLflow model
    that Spark's Python workers load (the driver needs no TensorFlow)."""
    if config.engine == "spark":
        from gz_experiments.tracking.spark import spark_model

        return spark_model(config.model_uri, f"{work_dir}/model")
    from gz_experiments.tracking.models import load_galaxy_model

    return load_galaxy_model(config.model_uri)


main = summary_main(PredictConfig, run, __doc__)

if __name__ == "__main__":
    main()
