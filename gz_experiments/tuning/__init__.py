"""Hyperparameter search with Optuna: `search` (the study, workers, the tune step), `storage`
(SQLite / PostgreSQL / journal), `plots` (study summary and figures). The only Optuna code."""
