"""The served model (`mlflow models serve`, `mlflow.pyfunc.load_model`): request limits, which
files it may read, and the pyfunc class. See `serving.limits` for what an operator can set."""
