"""gz_experiments: MLflow-tracked Galaxy Zoo experiments (Dirichlet-multinomial CNNs over decision trees)."""

__version__ = "0.1.0"
