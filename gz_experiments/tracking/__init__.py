"""The only package that talks to MLflow: runs, params, metrics, artifacts, models, registry."""
