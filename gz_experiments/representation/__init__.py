"""Galaxy representations: a trained model's encoder features, similar galaxies, anomalies.

- `embed`: encoder features of a folder / catalog / shard split streamed to parquet (+ PCA);
- `neighbours`: the nearest galaxies to an id_str or an image (scikit-learn NearestNeighbors);
- `anomaly`: a per-galaxy anomaly score (k-th neighbour distance, or an isolation forest);
- `plots`: image grids of neighbours and of the most unusual galaxies;
- `run`: the `embed` step (`run_embed`). No MLflow here.
"""
