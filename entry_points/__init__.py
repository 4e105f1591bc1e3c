"""Thin command-line entry points, one per MLproject step: parse flags into the step's config
(validated), open the step's MLflow run, call the library, log the result, print one summary.

TensorFlow's C++ start-up chatter is silenced here, before any step imports TensorFlow.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
