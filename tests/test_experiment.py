"""Where runs land and how they describe themselves (tracking/experiment.py)."""

from __future__ import annotations

from dataclasses import fields

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from gz_experiments.config import STEP_CONFIGS, SimulateConfig
from gz_experiments.tracking.experiment import (
    DEFAULT_EXPERIMENT,
    EXPERIMENT_NOTE,
    KIND_TAG,
    MODEL_TRAINING,
    NOTE_TAG,
    PURPOSE,
    describe_outcome,
    purpose_text,
)
from gz_experiments.tracking.runs import step_run


def test_every_step_has_a_purpose_naming_only_its_own_fields():
    assert set(PURPOSE) == set(STEP_CONFIGS)
    for step, (_, names) in PURPOSE.items():
        known = {f.name for f in fields(STEP_CONFIGS[step])}
        assert set(names) <= known, (step, set(names) - known)


def test_purpose_names_preset_and_the_fields_that_are_set():
    text = purpose_text(SimulateConfig.resolve("debug", seed=3))
    assert text.startswith("Rendered simulated galaxies")
    assert "Preset `debug`" in text and "seed=3" in text and "n_galaxies=64" in text


@pytest.fixture
def empty_store(tmp_path, monkeypatch, migrated_tracking_db):
    """A store where nothing chose an experiment (no MLFLOW_EXPERIMENT_* in the environment)."""
    import shutil

    shutil.copyfile(migrated_tracking_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the new experiment's artifacts go here
    mlflow.set_tracking_uri(uri)
    forget_chosen_experiment()
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    forget_chosen_experiment()


def forget_chosen_experiment() -> None:
    """A fresh process has no experiment set in-process (where it wins over the environment);
    earlier tests in this one did."""
    import mlflow.tracking.fluent as fluent

    fluent._active_experiment_id = None


def test_runs_go_to_galaxy_zoo_tagged_for_the_model_training_view(empty_store):
    with step_run(SimulateConfig.resolve("debug")) as run:
        describe_outcome("64 galaxies")
        describe_outcome("64 galaxies, again")  # the result is said once, the latest
    client = MlflowClient()
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == DEFAULT_EXPERIMENT
    assert experiment.tags[KIND_TAG] == MODEL_TRAINING
    assert experiment.tags[NOTE_TAG] == EXPERIMENT_NOTE
    note = client.get_run(run.info.run_id).data.tags[NOTE_TAG]
    assert note.startswith("Rendered simulated galaxies")
    assert note.endswith("**Result:** 64 galaxies, again") and note.count("**Result:**") == 1


def test_the_users_experiment_and_description_are_kept(empty_store, monkeypatch):
    client = MlflowClient()
    mine = client.create_experiment("mine", tags={NOTE_TAG: "my own words"})
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    with step_run(SimulateConfig.resolve("debug")) as run:
        pass
    assert run.info.experiment_id == mine
    tags = client.get_experiment(mine).tags
    assert tags[NOTE_TAG] == "my own words" and tags[KIND_TAG] == MODEL_TRAINING


def test_an_experiment_set_in_the_same_process_is_kept(empty_store):
    mlflow.set_experiment("notebook")
    with step_run(SimulateConfig.resolve("debug")) as run:
        pass
    assert MlflowClient().get_experiment(run.info.experiment_id).name == "notebook"
