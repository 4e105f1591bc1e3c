"""The `main` pipeline: simulate -> shard -> train -> evaluate -> register -> predict.

Each step is its own entry point, run as a child of the `main` run by a runner given by the
caller (the main entry point passes `tracking.projects.ProjectRunner`: `mlflow.projects.run`, or
a FINISHED run with the same entry point, parameters and code version, reused). Steps talk only
through what their runs record:

- simulate -> the catalog it wrote (tag `gz.catalog`);
- shard    -> the shard folder we asked for (`shard_dir` parameter);
- train    -> its model `runs:/<train run>/model`;
- evaluate -> its `test/...` metrics and `evaluation/test/metrics.md` table;
- register -> the registered version of that train run (`models:/<name>/<version>`);
- predict  -> its `predictions.parquet` artifact.

Every step gets the same preset; `extra` adds per-step parameters ("train.epochs=3").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gz_experiments.config import MainConfig, ShardConfig
from gz_experiments.errors import UserError
from gz_experiments.finished_run import FinishedRun
from gz_experiments.shards.default import shard_dir_for
from gz_experiments.shards.manifest import MANIFEST_NAME

STEPS = ("simulate", "shard", "train", "evaluate", "register", "predict")
SPLIT = "test"
SUMMARY_COLUMNS = ("n", "accuracy", "accuracy_confident", "mae", "coverage_0.8", "truth_mae_ratio")
TRAIN_HEADLINE = (
    ("best validation loss", "best_val_loss"),
    ("image-blind baseline loss", "baseline_val_loss"),
)
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
            outputs_exist: Callable[[FinishedRun], bool] | None = None) -> FinishedRun: ...  # fmt: skip


# Files outside the tracking store that a reused step's run points to (a cache may be wiped).
OUTPUTS_EXIST: dict[str, Callable[[FinishedRun], bool]] = {
    "simulate": lambda run: Path(run.tags.get("gz.catalog", "")).is_file(),
    "shard": lambda run: (Path(run.params.get("shard_dir", "")) / MANIFEST_NAME).is_file(),
}


@dataclass
class PipelineResult:
    preset: str
    steps: dict[str, FinishedRun] = field(default_factory=dict)
    shard_dir: str = ""
    model_uri: str = ""
    registered_uri: str = ""
    predictions: str = ""

    @property
    def headline(self) -> dict[str, float]:
        """Label -> value of the numbers a user looks at first (train and evaluate runs)."""
        train = self.steps["train"].metrics if "train" in self.steps else {}
        evaluate = self.steps["evaluate"].metrics if "evaluate" in self.steps else {}
        out = {label: train[key] for label, key in TRAIN_HEADLINE if key in train}
        out.update({label: evaluate[f"{SPLIT}/{key}"] for label, key in HEADLINE_METRICS
                    if f"{SPLIT}/{key}" in evaluate})  # fmt: skip
        return out

    def headline_metrics(self) -> dict[str, float]:
        """The headline as metric keys for the parent run (train's and `test/...` names)."""
        train = self.steps["train"].metrics if "train" in self.steps else {}
        evaluate = self.steps["evaluate"].metrics if "evaluate" in self.steps else {}
        out = {key: train[key] for _, key in TRAIN_HEADLINE if key in train}
        out.update({f"{SPLIT}/{key}": evaluate[f"{SPLIT}/{key}"] for _, key in HEADLINE_METRICS
                    if f"{SPLIT}/{key}" in evaluate})  # fmt: skip
        return out


def step_overrides(
    extra: dict[str, str], steps: tuple[str, ...] = STEPS
) -> dict[str, dict[str, str]]:
    """{"train.epochs": "3"} -> {"train": {"epochs": "3"}}; unknown steps are a UserError."""
    out: dict[str, dict[str, str]] = {step: {} for step in steps}
    for key, value in extra.items():
        step, _, name = key.partition(".")
        if step not in out or not name:
            raise UserError(
                f"extra parameter {key!r}: expected <step>.<parameter> with step one of "
                f"{', '.join(steps)} (e.g. train.epochs=3)"
            )
        out[step][name] = value
    return out


def shard_folder(catalog: str, preset: str, parameters: dict[str, str]) -> str:
    """The shard folder of the simulated catalog for these shard parameters: the same folder
    `train` uses for the preset's default dataset (shards.default), so both share the shards."""
    config = ShardConfig.from_strings(preset, {**parameters, "catalog": catalog})
    return str(shard_dir_for(config))


def simulated_catalog(run: FinishedRun) -> str:
    catalog = run.tags.get("gz.catalog", "")
    if not catalog:
        raise UserError(f"simulate run {run.run_id} recorded no catalog (tag gz.catalog)")
    return catalog


def registered_uri(run: FinishedRun, name: str) -> str:
    version = run.tags.get("gz.model_version", "")
    if not version:
        raise UserError(f"register run {run.run_id} recorded no version (tag gz.model_version)")
    return f"models:/{name}/{version}"


def predictions_location(run: FinishedRun) -> str:
    base = run.artifact_uri.removeprefix("file://")
    return f"{base.rstrip('/')}/predictions.parquet"


def run_pipeline(config: MainConfig, runner: Runner) -> PipelineResult:
    """Run (or reuse) every step in order; a failed step stops the pipeline with a UserError."""
    extra = step_overrides(config.extra)
    result = PipelineResult(preset=config.preset)

    def run(step: str, parameters: dict[str, str]) -> FinishedRun:
        result.steps[step] = runner.run(
            step, {**parameters, **extra[step]}, OUTPUTS_EXIST.get(step)
        )
        return result.steps[step]

    preset = {"preset": config.preset}
    catalog = simulated_catalog(run("simulate", preset))
    result.shard_dir = shard_folder(catalog, config.preset, extra["shard"])
    run("shard", {**preset, "catalog": catalog, "shard_dir": result.shard_dir})
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
    lines += steps_table(result.steps)
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


def steps_table(steps: dict[str, FinishedRun]) -> list[str]:
    """One line per child run: its step, run id and whether it ran or was reused."""
    lines = [f"{'step':<10} {'run id':<33} outcome"]
    for step, run in steps.items():
        lines.append(f"{step:<10} {run.run_id:<33} {'reused' if run.reused else 'ran'}")
    return lines


EXPECTED_MINUTES = {"debug": "1-2 minutes", "cpu": "about 4 minutes", "paper": "GPU hours"}


def plan_text(config: MainConfig) -> str:
    """What the user reads first: the steps and how long they take."""
    return (
        f"gz_experiments main pipeline, preset {config.preset}: {' -> '.join(STEPS)}, each a "
        f"child MLflow run. Expect {EXPECTED_MINUTES.get(config.preset, 'a few minutes')} on a 2-core CPU (steps "
        f"already run with the same parameters and code are reused). Training stops early when "
        f"the validation loss stops improving, usually well before its epoch limit."
    )
