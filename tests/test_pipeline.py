"""The main pipeline's wiring (with a fake runner) and its run-reuse rule (on a real store)."""

from __future__ import annotations

import pytest

from gz_experiments import pipeline
from gz_experiments.config import MainConfig, ShardConfig
from gz_experiments.errors import UserError
from gz_experiments.finished_run import FinishedRun
from gz_experiments.shards.default import default_shard_config
from gz_experiments.tracking.projects import ProjectRunner, find_finished_run

ENTRY_POINT_TAG = "mlflow.project.entryPoint"
CODE_TAG = "gz.code_version"


class FakeRunner:
    """Records each step's parameters and answers with what the real steps record."""

    def __init__(self):
        self.calls: list[tuple[str, dict[str, str]]] = []

    def run(self, entry_point, parameters, outputs_exist=None):
        self.calls.append((entry_point, parameters))
        tags = {
            "simulate": {"gz.catalog": "/cache/sim/catalog.csv"},
            "register": {"gz.model_version": "7"},
        }.get(entry_point, {})
        metrics = {"test/mean_accuracy": 0.9, "test/truth_mae_ratio": 0.8}
        return FinishedRun(entry_point, f"{entry_point}-id", reused=False, tags=tags, metrics=metrics,
                       artifact_uri=f"file:///store/{entry_point}/artifacts")  # fmt: skip


def test_each_step_gets_the_outputs_of_the_steps_before_it():
    runner = FakeRunner()
    config = MainConfig.resolve("debug", extra={"train.epochs": "3"})
    result = pipeline.run_pipeline(config, runner)
    calls = dict(runner.calls)
    assert [name for name, _ in runner.calls] == list(pipeline.STEPS)
    assert all(
        params.get("preset") == "debug" for name, params in runner.calls if name != "register"
    )
    assert calls["shard"]["catalog"] == "/cache/sim/catalog.csv"
    shard_dir = calls["shard"]["shard_dir"]
    assert shard_dir.startswith("/cache/sim/shards/")
    # the very folder `train` would use for the preset's default dataset: both share the shards
    assert shard_dir == default_shard_config("debug", "/cache/sim/catalog.csv").shard_dir
    assert calls["train"] == {"preset": "debug", "shard_dir": shard_dir, "epochs": "3"}
    assert calls["evaluate"]["model_uri"] == "runs:/train-id/model"
    assert calls["evaluate"]["shard_dir"] == shard_dir
    assert calls["register"] == {"name": "gz-decals", "run_id": "train-id"}
    assert calls["predict"]["model_uri"] == "models:/gz-decals/7"
    assert result.predictions == "/store/predict/artifacts/predictions.parquet"
    assert result.headline["mean accuracy"] == 0.9


def test_shard_folder_depends_on_the_resolved_shard_config():
    catalog = "/d/catalog.csv"
    a = pipeline.shard_folder(catalog, "cpu", {})
    # The cpu preset's own img_size, given explicitly, is the same config.
    img_size = str(ShardConfig.resolve("cpu").img_size)
    c = pipeline.shard_folder(catalog, "cpu", {"img_size": img_size, "n_workers": "1"})
    d = pipeline.shard_folder(catalog, "debug", {})
    e = pipeline.shard_folder(catalog, "cpu", {"seed": "7"})
    assert a == c
    assert len({a, d, e}) == 3


def test_extra_parameters_must_name_a_step():
    assert pipeline.step_overrides({"simulate.seed": "2"})["simulate"] == {"seed": "2"}
    with pytest.raises(UserError, match="train.epochs=3"):
        pipeline.step_overrides({"epochs": "3"})
    with pytest.raises(UserError, match="one of simulate"):
        pipeline.step_overrides({"fit.epochs": "3"})


def test_summary_says_where_everything_is():
    result = pipeline.run_pipeline(MainConfig.resolve("cpu"), FakeRunner())
    text = pipeline.summary_text(result, ui_command="mlflow ui --backend-store-uri sqlite:///x.db",
                                 parent_run_id="parent-id", table="| q | 1 |\n", elapsed=90)  # fmt: skip
    for expected in ("preset cpu", "1.5 min", "mlflow ui --backend-store-uri sqlite:///x.db",
                     "models:/gz-decals/7", "predictions.parquet", "runs:/train-id/model",
                     "mean accuracy", "0.9000", "| q | 1 |", "parent-id"):  # fmt: skip
        assert expected in text, expected


def fake_project_run(mlflow, entry_point, params, code, status="FINISHED"):
    """A run as `mlflow run` + step_run leave it: entry point and code-version tags, -P params,
    a final status."""
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name("test").experiment_id
    run = client.create_run(experiment, tags={ENTRY_POINT_TAG: entry_point, CODE_TAG: code})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_a_finished_run_is_reused_only_with_same_entry_point_params_and_code(tracking):
    import mlflow

    experiment = mlflow.get_experiment_by_name("test").experiment_id
    params = {"preset": "debug", "shard_dir": "/s"}
    old = fake_project_run(mlflow, "train", params, "abc")
    new = fake_project_run(mlflow, "train", params, "abc")
    fake_project_run(mlflow, "train", params, "abc", status="FAILED")
    fake_project_run(mlflow, "train", {**params, "epochs": "3"}, "def")

    assert find_finished_run("train", params, "abc", experiment).info.run_id == new != old
    # A run's extra params (the MLproject defaults mlflow run logs) do not prevent reuse.
    assert find_finished_run("train", {"preset": "debug"}, "abc", experiment) is not None
    assert find_finished_run("train", {**params, "shard_dir": "/t"}, "abc", experiment) is None
    assert find_finished_run("train", params, "other-code", experiment) is None
    assert find_finished_run("evaluate", params, "abc", experiment) is None


def test_runner_reuses_without_starting_a_project_run(tracking, monkeypatch):
    import mlflow

    def no_project_runs(**kwargs):
        raise AssertionError("mlflow.projects.run should not be called for a reusable step")

    monkeypatch.setattr(mlflow.projects, "run", no_project_runs)
    with mlflow.start_run():
        runner = ProjectRunner(".", "local")
        finished = fake_project_run(mlflow, "simulate", {"preset": "debug"}, runner.code_version)
        step = runner.run("simulate", {"preset": "debug"})
    assert step.reused and step.run_id == finished


def test_a_run_whose_files_are_gone_is_not_reused(tracking, monkeypatch, tmp_path):
    import mlflow

    started = []

    class Submitted:
        run_id = ""

    def project_run(**kwargs):
        started.append(kwargs["entry_point"])
        Submitted.run_id = fake_project_run(mlflow, "simulate", {"preset": "debug"}, "new")
        return Submitted

    monkeypatch.setattr(mlflow.projects, "run", project_run)
    with mlflow.start_run():
        runner = ProjectRunner(".", "local")
        old = fake_project_run(mlflow, "simulate", {"preset": "debug"}, runner.code_version)
        mlflow.MlflowClient().set_tag(old, "gz.catalog", str(tmp_path / "wiped" / "catalog.csv"))
        step = runner.run("simulate", {"preset": "debug"}, pipeline.OUTPUTS_EXIST["simulate"])
    assert started == ["simulate"]
    assert not step.reused and step.run_id != old


def test_a_failed_step_stops_the_pipeline_with_a_user_error(tracking, monkeypatch):
    import mlflow
    from mlflow.exceptions import ExecutionException

    def failing_run(**kwargs):
        raise ExecutionException(f"Run (ID 'x') failed: {kwargs['entry_point']}")

    monkeypatch.setattr(mlflow.projects, "run", failing_run)
    with mlflow.start_run():
        runner = ProjectRunner(".", "local")
        with pytest.raises(UserError, match="step 'train' failed"):
            runner.run("train", {"preset": "debug", "shard_dir": "/nowhere"})
