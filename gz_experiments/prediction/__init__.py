"""Predictions with MC dropout, for folders, catalogs, shard splits, lists and request tables.

- `sampling`: the one way concentrations are drawn (Sampler; predict, evaluate, serving);
- `inputs`: what to predict on, decoded in batches (and which files may be read);
- `tables`: the output columns; `writer`: streaming them to parquet / csv;
- `run`: predict in memory or to a file, and the `predict` step (`run_predict`).
"""
