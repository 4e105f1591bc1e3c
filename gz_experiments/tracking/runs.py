"""Opening a step's MLflow run (the one way every step does it), its config as params, tags,
and small artifacts.

    with step_run(config) as run:           # the run `mlflow run` opened, or a new one
        result = run_<step>(config, ...)
        log_<step>(result)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from gz_experiments.config import StepConfig
from gz_experiments.errors import UserError
from gz_experiments.tracking.code_version import TAG as CODE_VERSION_TAG
from gz_experiments.tracking.code_version import code_version
from gz_experiments.tracking.experiment import describe_run, use_project_experiment

TAG_PREFIX = "gz."
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_params call


def check_tracking_server(timeout: float = 5.0) -> None:
    """Fail before any work if an HTTP tracking server is unreachable (not after an hour)."""
    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise UserError(
        f"cannot reach the MLflow tracking server at {uri} ({problem}); start it "
        f"(mlflow server --host 127.0.0.1 --port 5000) or unset MLFLOW_TRACKING_URI to log to "
        f"./mlflow.db"
    )


def git_commit(cwd: str | Path = ".") -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def log_params_once(params: dict[str, str]) -> None:
    """Log params not yet on the active run; a different value for a logged key is a UserError.

    MLflow params are immutable; a resumed run re-logs the same config, which is fine, but
    changing a field on resume would silently describe the run wrongly.
    """
    run = mlflow.active_run()
    existing = MlflowClient().get_run(run.info.run_id).data.params
    changed = {k: (existing[k], v) for k, v in params.items() if k in existing and existing[k] != v}
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
        raise UserError(
            f"run {run.info.run_id} was logged with other values ({details}); start a new run "
            f"instead of changing its config"
        )
    items = [(k, v) for k, v in params.items() if k not in existing]
    for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
        mlflow.log_params(dict(items[i : i + MAX_PARAMS_PER_BATCH]))


def model_step(config: StepConfig, step: Callable[..., Any], log: Callable[[Any], None]) -> Any:
    """The shape of every step that applies a logged model to images (acquire, embed): load the
    model first (a wrong URI fails before a run exists), then in the step's run and a scratch
    folder `step(config, model, spec, work_dir)`, and `log(result)` inside the same run."""
    import tempfile

    from gz_experiments.tracking.models import load_galaxy_model

    model, spec = load_galaxy_model(config.model_uri)
    with step_run(config), tempfile.TemporaryDirectory(prefix=f"gz-{config.STEP}-") as work_dir:
        result = step(config, model, spec, work_dir)
        log(result)
    return result


@contextmanager
def step_run(
    config: StepConfig,
    *,
    tags: dict[str, Any] | None = None,
    run_id: str | None = None,
    nested: bool = False,
    system_metrics: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """The step's run: the one `mlflow run` opened (MLFLOW_RUN_ID) or already active, `run_id`
    (a resumed run), or a new run named after the step (nested under the active one if asked).

    Logs the resolved config once as `<step>.<field>` params (never clashing with the plain
    names `mlflow run` logs for -P parameters) and tags `gz.step`, `gz.preset`, `gz.git_commit`
    and `gz.code_version`. `system_metrics` samples CPU and memory (GPU when present).
    """
    check_tracking_server()
    use_project_experiment()
    step = config.STEP
    active = mlflow.active_run()
    reuse = active is not None and run_id is None and not nested
    if reuse:
        context = nullcontext(active)
    else:
        context = mlflow.start_run(
            run_id=run_id,
            run_name=None if run_id else step,
            nested=nested,
            log_system_metrics=system_metrics or None,
        )
    with context as run:
        if not reuse and run_id is None and run.info.run_name != step:
            # The run `mlflow run` opened has a random name; the UI should say which step it is.
            MlflowClient().update_run(run.info.run_id, name=step)
        log_params_once(config.flatten())
        describe_run(config)
        all_tags = {"step": step, "preset": config.preset, "git_commit": git_commit()}
        all_tags.update(tags or {})
        set_tags(all_tags)
        mlflow.set_tag(CODE_VERSION_TAG, code_version())
        yield run


def log_json(data: Any, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_file(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


def log_file_as(path: Path, name: str) -> None:
    """Log `path` under the step's standard artifact name (the user's own output file may be
    named anything; the run's artifact is always where the UI and the docs say)."""
    if path.name == name:
        log_file(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / name
        shutil.copyfile(path, copy)
        log_file(copy)


def log_figure(figure, artifact_file: str) -> None:
    mlflow.log_figure(figure, artifact_file)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    clean = {metric_key(k): float(v) for k, v in metrics.items()}
    mlflow.log_metrics(clean, step=step)


def metric_key(key: str) -> str:
    """MLflow keys allow alphanumerics, _ - . / and space; answers like "more-than-4" are fine."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({f"{TAG_PREFIX}{k}": str(v) for k, v in tags.items()})


def active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run")
    return run.info.run_id


def last_run_id() -> str:
    """The run this process used last (still known after it ended)."""
    run = mlflow.last_active_run()
    return run.info.run_id if run is not None else ""


def download_artifact(run_id: str, path: str, dst: str | Path) -> Path:
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=path, dst_path=str(dst)
    )
    return Path(local)


def refuse_mlflow_run_on_workers(step: str) -> None:
    """A non-chief worker started by `mlflow run` (MLFLOW_RUN_ID): `mlflow run` gave the job a
    second run before the command started, and cannot be told to end a deleted one (MLflow 3.17
    sets its status regardless). Say in that run and in one line how workers are started."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    how = (
        f"start non-chief workers with `python -m entry_points.{step}` and the same parameters "
        f"(`mlflow run` on the chief only: it is the job's one run)"
    )
    MlflowClient().set_tag(
        run_id, "mlflow.note.content", f"Not started: a non-chief worker; {how}."
    )
    raise UserError(f"this is a non-chief worker of a multi-worker job (TF_CONFIG): {how}")
