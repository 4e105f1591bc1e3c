"""The model-from-code file MLflow stores with every galaxy model and runs when loading it.

Logging the model by code rather than by pickling a Python object means loading it executes
only this file, which takes the class from the installed `gz_experiments` package.
"""

import mlflow

from gz_experiments.serving.model import GalaxyZooModel

mlflow.models.set_model(GalaxyZooModel())
