"""Active learning: which galaxies volunteers should classify next.

`acquisition_scores` ranks galaxies by BALD (the mutual information between the next volunteers'
votes and the model's parameters, from MC-dropout samples), by predictive entropy, or at random
(the baseline); `acquisition_columns` gives the prediction table's documented acquisition columns.
Pure NumPy / SciPy, like `evaluate.py`: no TensorFlow, no MLflow.
"""

from gz_experiments.acquisition.scores import (
    DEFAULT_N_VOLUNTEERS,
    KINDS,
    MAX_EXACT_OUTCOMES,
    MC_DRAWS,
    AcquisitionScores,
    acquisition_columns,
    acquisition_scores,
    n_outcomes,
    question_information,
)

__all__ = [
    "DEFAULT_N_VOLUNTEERS",
    "KINDS",
    "MAX_EXACT_OUTCOMES",
    "MC_DRAWS",
    "AcquisitionScores",
    "acquisition_columns",
    "acquisition_scores",
    "n_outcomes",
    "question_information",
]
