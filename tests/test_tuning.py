"""The Optuna search and its MLflow runs, with a fast fake in place of Keras training."""

from __future__ import annotations

import time

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from entry_points.tune import run as run_tune_step
from gz_experiments.config import ConfigError, TuneConfig
from gz_experiments.errors import UserError
from gz_experiments.tracking.runs import last_run_id, step_run
from gz_experiments.tuning import search as tuning
from gz_experiments.tuning import storage as tuning_storage

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAILED": "FAILED"}


def scripted_train(curves):
    """A train_fn whose n-th call reports the n-th validation-loss curve (or raises it)."""
    calls = iter(curves)

    def train_fn(train_config, report):
        curve = next(calls)
        if isinstance(curve, Exception):
            raise curve
        for epoch, value in enumerate(curve):
            mlflow.log_metric("val_loss", value, step=epoch + 1)  # as the Keras callback does
            report(epoch, {"val_loss": value})
        return min(curve)

    return train_fn


def run_tune(config, train_fn, pruner=None):
    result = run_tune_step(config, train_fn=train_fn, pruner=pruner)
    return last_run_id(), result.summary


def children(parent_id):
    runs = MlflowClient().search_runs(
        [MlflowClient().get_run(parent_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
    )
    return sorted(runs, key=lambda r: int(r.data.tags["gz.trial_number"]))


def config_for(tmp_path, **overrides):
    values = {"storage": str(tmp_path / "optuna.db"), "n_trials": 3, "epochs": 2}
    values.update(overrides)
    return TuneConfig.resolve("debug", **values)


def load(config):
    return tuning.load_study(config).get_trials()


def test_pruned_and_complete_trials_each_have_a_child_run(tracking, tmp_path):
    config = config_for(tmp_path)
    train_fn = scripted_train([[1.0, 0.8], [5.0, 4.0], [0.9, 0.7]])
    parent_id, summary = run_tune(config, train_fn, optuna.pruners.ThresholdPruner(upper=3.0))

    trials = load(config)
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    runs = children(parent_id)
    assert len(runs) == 3
    for trial, run in zip(trials, runs, strict=True):
        state = "FAILED" if trial.state.name == "FAIL" else trial.state.name
        assert run.data.tags["gz.trial_state"] == state
        assert run.info.status == STATUS[state]
        assert trial.user_attrs[tuning.RUN_ID_ATTR] == run.info.run_id
        assert float(run.data.params["trial.dropout"]) == pytest.approx(trial.params["dropout"])
    pruned_history = MlflowClient().get_metric_history(runs[1].info.run_id, "val_loss")
    assert [m.value for m in pruned_history] == [5.0]  # stopped after its first epoch

    parent = MlflowClient().get_run(parent_id)
    assert parent.data.metrics["best_value"] == pytest.approx(0.7)
    assert parent.data.metrics["n_trials_pruned"] == 1
    assert parent.data.tags["gz.best_trial_number"] == "2"
    assert float(parent.data.params["best.dropout"]) == pytest.approx(trials[2].params["dropout"])
    assert parent.data.tags["gz.storage"] == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert summary["best"]["run_id"] == runs[2].info.run_id
    artifacts = {a.path for a in MlflowClient().list_artifacts(parent_id, "study")}
    assert {
        "study/summary.json",
        "study/optimization_history.png",
        "study/param_importances.png",
        "study/parallel_coordinate.png",
        "study/intermediate_values.png",
    } <= artifacts


def test_rerun_resumes_the_study_with_new_parameters(tracking, tmp_path):
    config = config_for(tmp_path, n_trials=2, pruner="none")
    first, _ = run_tune(config, scripted_train([[1.0], [2.0]]))
    second, summary = run_tune(config, scripted_train([[3.0], [0.5]]))

    trials = load(config)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert [r.data.tags["gz.trial_number"] for r in children(second)] == ["2", "3"]
    assert summary["best"]["number"] == 3  # the summary covers the whole study
    notes = {a.path for a in MlflowClient().list_artifacts(first, "study")}
    assert "study/notes.txt" not in notes  # two complete trials: every plot drawn


def test_trial_n_is_sampled_with_seed_plus_n():
    def params(seed, n):
        study = optuna.create_study(sampler=tuning.TrialSeededSampler(seed))
        config = TuneConfig.resolve("paper")
        study.optimize(lambda t: sum(tuning.suggest_params(t, config).values()), n_trials=n)
        return [t.params for t in study.trials]

    seed0 = params(0, 3)
    assert seed0 == params(0, 3)  # reproducible
    assert len({tuple(p.values()) for p in seed0}) == 3
    # Trial 1 of seed 0 draws with seed 1, like trial 0 of seed 1 (random start-up phase of TPE).
    assert seed0[1] == params(1, 1)[0]


def test_a_crashing_trial_fails_alone_and_all_failing_is_an_error(tracking, tmp_path):
    config = config_for(tmp_path, pruner="none")
    parent_id, summary = run_tune(config, scripted_train([[1.0], MemoryError("OOM"), [0.5]]))
    assert summary["counts"]["FAILED"] == 1 and summary["counts"]["COMPLETE"] == 2
    failed = children(parent_id)[1]
    assert failed.info.status == "FAILED" and failed.data.tags["gz.trial_state"] == "FAILED"
    assert summary["trials"][1]["fail_reason"] == "MemoryError: OOM"

    lonely = config_for(tmp_path, study_name="doomed", n_trials=1)
    with pytest.raises(UserError, match="trial 0 failed with: ValueError: bad"):
        run_tune(lonely, scripted_train([ValueError("bad")]))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_trial_left_running_by_a_dead_worker_is_failed(tracking, tmp_path):
    config = config_for(tmp_path, n_trials=1, heartbeat_interval=1, pruner="none")
    storage = tuning_storage.open_storage(
        tuning_storage.resolve_storage(config.storage), 1, lambda *a: None
    )
    study = optuna.create_study(storage=storage, study_name=config.study_name)
    orphan = study.ask()
    with step_run(tuning.loggable(config)) as dead_parent:
        dead_run = MlflowClient().create_run(dead_parent.info.experiment_id).info.run_id
    orphan.set_user_attr(tuning.RUN_ID_ATTR, dead_run)
    storage.record_heartbeat(orphan._trial_id)  # the worker was alive once, then killed
    time.sleep(4.2)  # > grace period (3 heartbeats) + 1 s: SQLite stores whole seconds

    run_tune(config, scripted_train([[1.0]]))
    assert [t.state.name for t in load(config)] == ["FAIL", "COMPLETE"]
    dead = MlflowClient().get_run(dead_run)
    assert dead.info.status == "FAILED" and dead.data.tags["gz.trial_state"] == "FAILED"


def test_journal_storage_holds_a_study(tracking, tmp_path):
    config = config_for(tmp_path, storage=str(tmp_path / "study.log"), n_trials=2, pruner="none")
    run_tune(config, scripted_train([[1.0], [2.0]]))
    assert (tmp_path / "study.log").exists()
    assert [t.state.name for t in load(config)] == ["COMPLETE", "COMPLETE"]


def test_storage_forms_and_masking(tmp_path, monkeypatch):
    assert tuning_storage.resolve_storage("") == "sqlite:///optuna.db"
    assert tuning_storage.resolve_storage("runs/a.db") == "sqlite:///runs/a.db"
    assert tuning_storage.resolve_storage("runs/a.log") == "journal:runs/a.log"
    assert tuning_storage.resolve_storage("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(UserError, match="neither a URL"):
        tuning_storage.resolve_storage("optuna")
    assert (
        tuning_storage.mask_url("postgresql://ann:s3cr:t@db:5432/x")
        == "postgresql://ann:***@db:5432/x"
    )
    assert tuning_storage.mask_url("postgresql://ann@db/x") == "postgresql://ann@db/x"
    assert tuning_storage.mask_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    with pytest.raises(UserError, match=r"postgresql://ann:\*\*\*@127.0.0.1:1/x") as error:
        tuning_storage.open_storage("postgresql://ann:hunter2@127.0.0.1:1/x", 60, lambda *a: None)
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"pruner": "sometimes"}, "pruner='sometimes' is not one of"),
        ({"crop_fraction_range": (0.9, 0.6)}, "crop_fraction_range"),
        ({"learning_rate_range": (0.0, 0.1)}, "learning_rate_range"),
        ({"batch_size_choices": ()}, "batch_size_choices"),
        ({"n_workers": 0}, "n_workers"),
    ],
)
def test_invalid_search_is_a_user_error(override, message):
    with pytest.raises(ConfigError, match=message):
        TuneConfig.resolve("debug", **override)


def test_trial_config_takes_the_sampled_values():
    config = TuneConfig.resolve("debug", epochs=5, shard_dir="shards")
    params = {
        "crop_fraction": 0.7,
        "image_size": 16,
        "dropout": 0.3,
        "learning_rate": 1e-3,
        "batch_size": 8,
    }
    train = tuning.trial_train_config(config, params)
    assert (train.epochs, train.shard_dir, train.architecture) == (5, "shards", "small_cnn")
    assert {k: getattr(train, k) for k in tuning.SEARCHED} == params


def test_workers_share_trials_and_gpus(monkeypatch):
    assert tuning.split_trials(7, 3) == [3, 2, 2]
    assert sum(tuning.split_trials(2, 4)) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert tuning.worker_gpus(3) == ["2", "5", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert tuning.worker_gpus(2) == [None, None]
