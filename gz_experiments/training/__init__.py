"""Training: `fit` (the Keras loop, checkpoints, exact resume), `run` (the train step: data,
baseline, fit -> TrainResult) and `plots` (loss curves). No MLflow here."""
