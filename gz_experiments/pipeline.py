"""The `main` pipeline: simulate -> shard -> train -> evaluate -> register -> predict.

Each step is its own entry point, run as a child of the `main` run by a runner
(`tracking.projects.ProjectRunner`: `mlflow.projects.run`, or a FINISHED run with the same
entry point, parameters and git commit, reused). Steps talk only through what their runs record:

- simulate -> the catalog it wrote (tag `gz.catalog`);
- shard    -> the shard folder we asked for (`shard_dir` parameter);
- train    -> its model `runs:/<train run>/model`;
- evaluate -> its `test/...` metrics and `evaluation/test/metrics.md` table;
- register -> the registered version of that train run (`models:/<name>/<version>`);
- predict  -> its `predictions.parquet` artifact.

Every step gets the same preset; `extra` adds per-step parameters ("train.epochs=3").
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from gz_experiments.cli import parse_config
from gz_experiments.config import MainConfig, ShardConfig
from gz_experiments.errors import UserError
from gz_experiments.evaluation_plots import markdown_table
from gz_experiments.manifest import MANIFEST_NAME
from gz_experiments.tracking.projects import ProjectRunner, StepRun, ui_command
from gz_experiments.tracking.runs import download_artifacts, log_text, set_tags, step_run

STEPS = ("simulate", "shard", "train", "evaluate", "register", "predict")
SPLIT = "test"
SUMMARY_COLUMNS = ("n", "accuracy", "accuracy_confident", "mae", "coverage_0.8", "truth_mae_ratio")
HEADLINE_METRICS = (
    ("mean accuracy", "mean_accuracy"),
    ("mean accuracy (confident)", "mean_accuracy_confident"),
    ("mean vote-fraction MAE", "mean_mae"),
    ("MAE vs simulator truth", "truth_mae"),
    ("volunteer floor MAE", "volunteer_floor_mae"),
    ("truth MAE ratio (model / volunteers)", "truth_mae_ratio"),
)


class Runner(Protocol):
    def run(self, entry_point: str, parameters: dict[str, str],
            outputs_exist: Callable[[StepRun], bool] | None = None) -> StepRun: ...  # fmt: skip


# Files outside the tracking store that a reused step's run points to (a cache may be wiped).
OUTPUTS_EXIST: dict[str, Callable[[StepRun], bool]] = {
    "simulate": lambda run: Path(run.tags.get("gz.catalog", "")).is_file(),
    "shard": lambda run: (Path(run.params.get("shard_dir", "")) / MANIFEST_NAME).is_file(),
}


@dataclass
class PipelineResult:
    preset: str
    steps: dict[str, StepRun] = field(default_factory=dict)
    shard_dir: str = ""
    model_uri: str = ""
    registered_uri: str = ""
    predictions: str = ""

    @property
    def headline(self) -> dict[str, float]:
        metrics = self.steps["evaluate"].metrics if "evaluate" in self.steps else {}
        return {label: metrics[f"{SPLIT}/{key}"] for label, key in HEADLINE_METRICS
                if f"{SPLIT}/{key}" in metrics}  # fmt: skip


def step_overrides(extra: dict[str, str]) -> dict[str, dict[str, str]]:
    """{"train.epochs": "3"} -> {"train": {"epochs": "3"}}; unknown steps are a UserError."""
    out: dict[str, dict[str, str]] = {step: {} for step in STEPS}
    for key, value in extra.items():
        step, _, name = key.partition(".")
        if step not in out or not name:
            raise UserError(
                f"extra parameter {key!r}: expected <step>.<parameter> with step one of "
                f"{', '.join(STEPS)} (e.g. train.epochs=3)"
            )
        out[step][name] = value
    return out


def shard_dir_for(catalog: str, parameters: dict[str, str]) -> str:
    """A shard folder beside the simulated catalog, named by the hash of the ShardConfig these
    parameters resolve to (preset values included), so the same config finds the same
    (idempotent) shards and a changed preset or code default never collides with old shards."""
    argv = [arg for key, value in parameters.items() for arg in (f"--{key}", value)]
    config = parse_config(ShardConfig, argv, None).replace(n_workers=0)
    key = json.dumps(config.to_dict(), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return str(Path(catalog).parent / "shards" / f"main-{digest}")


def simulated_catalog(run: StepRun) -> str:
    catalog = run.tags.get("gz.catalog", "")
    if not catalog:
        raise UserError(f"simulate run {run.run_id} recorded no catalog (tag gz.catalog)")
    return catalog


def registered_uri(run: StepRun, name: str) -> str:
    version = run.tags.get("gz.model_version", "")
    if not version:
        raise UserError(f"register run {run.run_id} recorded no version (tag gz.model_version)")
    return f"models:/{name}/{version}"


def predictions_location(run: StepRun) -> str:
    base = run.artifact_uri.removeprefix("file://")
    return f"{base.rstrip('/')}/predictions.parquet"


def run_pipeline(config: MainConfig, runner: Runner) -> PipelineResult:
    """Run (or reuse) every step in order; a failed step stops the pipeline with a UserError."""
    extra = step_overrides(config.extra)
    result = PipelineResult(preset=config.preset)

    def run(step: str, parameters: dict[str, str]) -> StepRun:
        result.steps[step] = runner.run(
            step, {**parameters, **extra[step]}, OUTPUTS_EXIST.get(step)
        )
        return result.steps[step]

    preset = {"preset": config.preset}
    catalog = simulated_catalog(run("simulate", preset))
    shard_params = {**preset, "catalog": catalog, **extra["shard"]}
    result.shard_dir = shard_dir_for(catalog, shard_params)
    run("shard", {**shard_params, "shard_dir": result.shard_dir})
    train = run("train", {**preset, "shard_dir": result.shard_dir})
    result.model_uri = f"runs:/{train.run_id}/model"
    evaluate = {"model_uri": result.model_uri, "shard_dir": result.shard_dir, "split": SPLIT}
    run("evaluate", {**preset, **evaluate})
    register = run("register", {"name": config.model_name, "run_id": train.run_id})
    result.registered_uri = registered_uri(register, config.model_name)
    predict = {"model_uri": result.registered_uri, "input": result.shard_dir, "split": SPLIT}
    result.predictions = predictions_location(run("predict", {**preset, **predict}))
    return result


def summary_text(result: PipelineResult, *, ui_command: str, parent_run_id: str,
                 table: str = "", elapsed: float | None = None) -> str:  # fmt: skip
    """What the user reads at the end: where everything is and how well the model did."""
    took = f" in {elapsed / 60:.1f} min" if elapsed is not None else ""
    lines = [f"gz_experiments main pipeline (preset {result.preset}) finished{took}", ""]
    lines.append(f"{'step':<10} {'run id':<33} outcome")
    for step, run in result.steps.items():
        lines.append(f"{step:<10} {run.run_id:<33} {'reused' if run.reused else 'ran'}")
    lines += ["", f"Headline metrics ({SPLIT} split of {result.shard_dir}):"]
    lines += [f"  {label:<38} {value:.4f}" for label, value in result.headline.items()]
    if table:
        lines += ["", table.rstrip()]
    lines += [
        "",
        f"Trained model:     {result.model_uri}",
        f"Registered model:  {result.registered_uri}",
        f"Predictions:       {result.predictions}",
        f"MLflow UI:         {ui_command}   (parent run {parent_run_id})",
    ]
    return "\n".join(lines) + "\n"


def run_main(config: MainConfig, project_dir: str | Path = ".") -> str:
    """The `main` entry point: the pipeline under one parent run; returns the summary text."""
    start = time.monotonic()
    with step_run("main", config) as parent:
        runner = ProjectRunner(project_dir, config.env_manager, reuse=config.reuse)
        result = run_pipeline(config, runner)
        set_tags({f"{step}_run_id": run.run_id for step, run in result.steps.items()})
        set_tags({f"{step}_reused": run.reused for step, run in result.steps.items()})
        text = summary_text(
            result,
            ui_command=ui_command(),
            parent_run_id=parent.info.run_id,
            table=evaluation_table(result.steps["evaluate"]),
            elapsed=time.monotonic() - start,
        )
        log_text(text, "summary.txt")
    return text


def evaluation_table(run: StepRun) -> str:
    """The evaluate run's per-question table, narrowed to what fits a terminal."""
    path = download_artifacts(run.run_id, f"evaluation/{SPLIT}/metrics.csv")
    table = pd.read_csv(path, index_col=0)
    return markdown_table(table[[c for c in SUMMARY_COLUMNS if c in table.columns]])
