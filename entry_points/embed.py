"""Galaxy representations, as an MLflow run: a model's encoder features for a folder, catalog or
shard split, written as parquet; the nearest neighbours of chosen galaxies; an anomaly score.

Exact commands (from the repo root, venv active):

    mlflow run . -e embed --env-manager local -P model_uri=models:/gz-decals@champion \
        -P input=../shared/data/gzd5_real_128/images -P output=embeddings.parquet
    mlflow run . -e embed --env-manager local -P model_uri=runs:/<run id>/model \
        -P input=catalog.csv -P pca_components=16 \
        -P similar_to=J000411.19+020924.0,my_galaxy.png -P anomaly=isolation_forest

Output columns: id_str, then feature_0 ... feature_{d-1} (the encoder's pooled features of the
central crop), or pca_0 ... pca_{k-1} with pca_components=k (the fitted reducer is logged as
pca.joblib). similar_to takes id_strs of the input or image files; each gets similar/<id>.png
(a grid of its n_neighbours nearest galaxies) and rows in similar.csv (query, rank, id_str,
distance). anomaly=knn scores each galaxy by the distance to its anomaly_k-th neighbour,
isolation_forest by an isolation forest; anomaly.parquet (id_str, anomaly_score, anomaly_rank,
most unusual first) and anomaly/most_unusual.png. Unreadable images are listed in skipped.csv.
"""

import tempfile

from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config import EmbedConfig
from gz_experiments.representation.run import check_request, run_embed


def run(config: EmbedConfig):
    from gz_experiments.tracking.embed import log_embed
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.runs import step_run

    check_request(config)
    model, spec = load_galaxy_model(config.model_uri)
    with step_run(config), tempfile.TemporaryDirectory(prefix="gz-embed-") as work_dir:
        result = run_embed(config, model, spec, work_dir)
        log_embed(result)
    return result


@entry_point
def main(argv=None):
    import sys

    result = run(parse_config(EmbedConfig, argv, __doc__))
    print(result.summary(), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
