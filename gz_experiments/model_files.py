"""A saved model on disk: the `.keras` file and its `model_spec.json`, as logged, served and
loaded from a folder. Reading them needs Keras but no MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

    from gz_experiments.model_spec import ModelSpec

KERAS_FILE = "model.keras"
SPEC_FILE = "model_spec.json"
# Training checkpoints: `<work_dir>/checkpoints` while training (training.fit) and the train
# run's `checkpoints/` artifacts (tracking.train), one name so that a downloaded folder resumes.
CHECKPOINT_DIR = "checkpoints"
LAST, BEST, STATE = "last.keras", "best.keras", "state.json"
# How Keras names the state variable of each random generator (dropout's): a checkpoint carries
# them for exact resumes, and MC sampling sets them per galaxy.
SEED_STATE_SUFFIX = "seed_generator_state"


def load_files(keras_path: str | Path, spec_path: str | Path) -> tuple[keras.Model, ModelSpec]:
    import keras

    import gz_experiments.models  # noqa: F401  (registers the custom layers before loading)
    from gz_experiments.model_spec import ModelSpec

    spec = ModelSpec.from_dict(json.loads(Path(spec_path).read_text()))
    return keras.models.load_model(keras_path, compile=False), spec
