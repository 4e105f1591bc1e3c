"""Active learning: which galaxies volunteers should classify next.

`acquisition_scores` ranks galaxies by BALD (the mutual information between the next volunteers'
votes and the model's parameters, from MC-dropout samples), by predictive entropy, or at random
(the baseline); `acquisition_columns` gives the prediction table's documented acquisition columns.
The scores live in `votes.information` (pure NumPy / SciPy), re-exported here.

Also here, imported by name (they need a model): `run` (the `acquire` step: rank an unlabelled
input, keep the top k), `loop` (the closed loop with simulated volunteers behind
benchmarks/bench_active_learning.py) and `plots` (the top-k grid, the learning curves).
"""

from gz_experiments.votes.information import (
    DEFAULT_N_VOLUNTEERS,
    KINDS,
    MAX_EXACT_OUTCOMES,
    MC_DRAWS,
    AcquisitionScores,
    acquisition_column_names,
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
    "acquisition_column_names",
    "acquisition_columns",
    "acquisition_scores",
    "n_outcomes",
    "question_information",
]
