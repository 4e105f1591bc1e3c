r"""Galaxy representations, as an MLflow run: a model's encoder features for a folder, catalog or
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

from gz_experiments.cli import summary_main
from gz_experiments.config import EmbedConfig
from gz_experiments.representation.run import check_inputs, run_embed


def run(config: EmbedConfig):
    from gz_experiments.tracking.embed import log_embed
    from gz_experiments.tracking.runs import model_step

    check_inputs(config)
    return model_step(config, run_embed, log_embed)


main = summary_main(EmbedConfig, run, __doc__)

if __name__ == "__main__":
    main()
