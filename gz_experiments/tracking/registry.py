"""Register the best training run's model and move the `champion` alias only when it is better.

    result = run_register(RegisterConfig.resolve("cpu", experiment="gz", name="gz-decals"))
    result = run_register(RegisterConfig.resolve("cpu", run_id="abc123", force=True))
    mlflow.pyfunc.load_model("models:/gz-decals@champion")

A candidate is a FINISHED run tagged `gz.step=train` with a logged model named `model` and a
`best_val_loss` metric; the lowest loss wins. Registering the same run twice reuses its version.
The version is tagged `gz.val_loss`, `gz.source_run_id` and the run's `gz.schema`,
`gz.data_manifest_sha256`, ... tags, so a version says what it was trained on without opening
the run. Losses are only comparable on the same data: a champion trained on another manifest is
still replaced only by a lower loss (or `force`), and the result says the manifests differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gz_experiments.config import RegisterConfig
from gz_experiments.errors import UserError
from gz_experiments.tracking.experiment import describe_outcome, describe_version
from gz_experiments.tracking.runs import TAG_PREFIX, set_tags

MODEL_NAME = "model"  # the name train logs its model under (runs:/<id>/model)
LOSS_METRIC = "best_val_loss"
COPIED_TAGS = ("schema", "data_manifest_sha256", "architecture", "shard_run_id", "git_commit",
               "step", "parent_model_uri", "parent_model_source", "parent_run_id")  # fmt: skip


@dataclass(frozen=True)
class RegisterResult:
    name: str
    version: str
    run_id: str
    val_loss: float
    alias: str
    alias_moved: bool
    previous_version: str | None  # the alias holder before this call
    previous_val_loss: float | None
    reason: str  # why the alias moved or not, one line

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"

    @property
    def version_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def run_register(config: RegisterConfig) -> RegisterResult:
    """Register `run_id`'s model, or the best finished training run's in `experiment` ("" = the
    current experiment); move `alias` to it only if its val loss beats the holder's, or `force`."""
    experiment, name, alias, force = config.experiment, config.name, config.alias, config.force
    run_id = config.run_id or None
    if not name:
        raise UserError("give the registered model a name, e.g. name=gz-decals")
    client = MlflowClient()
    run = _given_run(client, run_id) if run_id else _best_run(client, experiment)
    val_loss = _val_loss(run)
    version = _version_for(client, name, run)
    _tag_version(client, name, version, run, val_loss)
    previous = _alias_holder(client, name, alias)
    previous_loss = _version_loss(previous) if previous else None
    moved, reason = _decide(version, val_loss, previous, previous_loss, force)
    if moved:
        client.set_registered_model_alias(name, alias, version)
    return RegisterResult(
        name=name,
        version=version,
        run_id=run.info.run_id,
        val_loss=val_loss,
        alias=alias,
        alias_moved=moved,
        previous_version=str(previous.version) if previous else None,
        previous_val_loss=previous_loss,
        reason=reason + _manifest_note(run, previous),
    )


def log_register(result: RegisterResult) -> None:
    """On the register step's own run: which version of which run, and whether the alias moved."""
    set_tags(
        {
            "registered_model": result.name,
            "model_version": result.version,
            "source_run_id": result.run_id,
            "alias_moved": result.alias_moved,
        }
    )
    describe_outcome(
        f"Version {result.version} of {result.name} (from run {result.run_id}, best_val_loss "
        f"{result.val_loss:.4f}); alias {result.alias!r} "
        f"{'moved to it' if result.alias_moved else 'not moved'}: {result.reason}"
    )


def _given_run(client: MlflowClient, run_id: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"run {run_id!r} not found at {mlflow.get_tracking_uri()}") from None
    if not _has_model(run):
        raise UserError(
            f"run {run_id} has no logged model named {MODEL_NAME!r}: is it a finished training run?"
        )
    return run


def _best_run(client: MlflowClient, experiment: str) -> Run:
    experiment_id = _experiment_id(client, experiment)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_PREFIX}step` = 'train' and attributes.status = 'FINISHED'",
        order_by=[f"metrics.{LOSS_METRIC} ASC"],
        max_results=1000,
    )
    candidates = [r for r in runs if _has_model(r) and _finite(r.data.metrics.get(LOSS_METRIC))]
    if not candidates:
        raise UserError(
            f"experiment {experiment or experiment_id!r} has no FINISHED training run "
            f"(tag {TAG_PREFIX}step=train) with a logged model and a {LOSS_METRIC} metric; "
            f"train one first (mlflow run . -e train) or pass run_id=..."
        )
    return min(candidates, key=lambda r: r.data.metrics[LOSS_METRIC])


def _experiment_id(client: MlflowClient, experiment: str) -> str:
    if not experiment:
        return mlflow.tracking.fluent._get_experiment_id()
    found = client.get_experiment_by_name(experiment)
    if found is None and experiment.isdigit():
        try:
            found = client.get_experiment(experiment)
        except MlflowException:
            found = None
    if found is None:
        raise UserError(f"no experiment named {experiment!r} at {mlflow.get_tracking_uri()}")
    return found.experiment_id


def _has_model(run: Run) -> bool:
    return bool(run.outputs and run.outputs.model_outputs)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _val_loss(run: Run) -> float:
    value = run.data.metrics.get(LOSS_METRIC)
    if not _finite(value):
        raise UserError(f"run {run.info.run_id} has no finite {LOSS_METRIC} metric to compare")
    return float(value)


def _version_for(client: MlflowClient, name: str, run: Run) -> str:
    """The version already registered from this run, or a new one."""
    run_id = run.info.run_id
    try:
        existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        existing = []
    if existing:
        return str(min(int(v.version) for v in existing))
    version = mlflow.register_model(f"models:/{_model_id(client, run)}", name)
    return str(version.version)


def _model_id(client: MlflowClient, run: Run) -> str:
    for output in run.outputs.model_outputs:
        if client.get_logged_model(output.model_id).name == MODEL_NAME:
            return output.model_id
    raise UserError(f"run {run.info.run_id} has no logged model named {MODEL_NAME!r}")


def _tag_version(client: MlflowClient, name: str, version: str, run: Run, loss: float) -> None:
    tags = {"val_loss": repr(loss), "source_run_id": run.info.run_id}
    for key in COPIED_TAGS:
        value = run.data.tags.get(f"{TAG_PREFIX}{key}")
        if value is not None:
            tags[key] = value
    for key, value in tags.items():
        client.set_model_version_tag(name, version, f"{TAG_PREFIX}{key}", value)
    describe_version(name, version, run.info.run_id, run.data.tags, loss)


def _alias_holder(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such alias yet
        return None


def _version_loss(version) -> float | None:
    value = version.tags.get(f"{TAG_PREFIX}val_loss")
    return float(value) if value is not None else None


def _decide(version, loss, previous, previous_loss, force) -> tuple[bool, str]:
    if previous is None:
        return True, "no champion yet"
    if str(previous.version) == version:
        return False, f"version {version} already holds the alias"
    if force:
        return True, f"forced over version {previous.version} (val loss {previous_loss})"
    if previous_loss is None or loss < previous_loss:
        return True, f"val loss {loss:.4f} beats version {previous.version} ({previous_loss})"
    return False, (
        f"val loss {loss:.4f} does not beat version {previous.version} ({previous_loss:.4f}); "
        f"pass force=true to move the alias anyway"
    )


def _manifest_note(run: Run, previous) -> str:
    key = f"{TAG_PREFIX}data_manifest_sha256"
    mine, theirs = run.data.tags.get(key), previous.tags.get(key) if previous else None
    if mine and theirs and mine != theirs:
        return " (note: the two models were validated on different data manifests)"
    return ""


def example_image(run_id: str) -> str:
    """An image the model was tested on (its shards' test catalog), so that the printed snippet
    runs as pasted; a placeholder when that catalog or image is gone."""
    import pandas as pd

    from gz_experiments.shards.manifest import load_manifest

    try:
        shard_dir = MlflowClient().get_run(run_id).data.tags[f"{TAG_PREFIX}shard_dir"]
        manifest = load_manifest(shard_dir)
        files = pd.read_parquet(manifest.catalog_path("test"), columns=["file_loc"])["file_loc"]
    except (KeyError, UserError, OSError, ValueError, MlflowException):
        return "<path to a galaxy image>"
    return next((str(f) for f in files if Path(str(f)).is_file()), "<path to a galaxy image>")


def usage_text(result: RegisterResult) -> str:
    """What happened, and the exact commands to load and serve the champion."""
    uri = mlflow.get_tracking_uri()
    moved = "moved to" if result.alias_moved else "NOT moved to"
    image = example_image(result.run_id)
    return "\n".join(
        [
            f"registered {result.version_uri} from run {result.run_id} "
            f"(best_val_loss {result.val_loss:.4f}); alias '{result.alias}' {moved} it: "
            f"{result.reason}",
            "",
            "load it in Python:",
            f'  MLFLOW_TRACKING_URI={uri} python -c "import mlflow, pandas as pd; '
            f"m = mlflow.pyfunc.load_model('{result.champion_uri}'); "
            f"p = m.predict(pd.DataFrame({{'file_loc': ['{image}']}})); "
            # the vote fractions, one per line: a printed frame of ~100 columns shows only ends
            f"print(p.filter(like='_fraction').iloc[0].to_string())\"",
            "serve it (POST /invocations, see README):",
            f"  MLFLOW_TRACKING_URI={uri} mlflow models serve -m {result.champion_uri} "
            f"--env-manager local -p 5001",
            "predict a folder / catalog / shard folder:",
            f"  MLFLOW_TRACKING_URI={uri} mlflow run . -e predict --env-manager local "
            f"-P model_uri={result.champion_uri} -P input=<images or catalog>",
        ]
    )
