"""Opening a step's MLflow run, logging its resolved config once, tags, and small artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from gz_experiments.config import StepConfig
from gz_experiments.errors import UserError
from gz_experiments.tracking.code_version import TAG as CODE_VERSION_TAG
from gz_experiments.tracking.code_version import code_version

TAG_PREFIX = "gz."


def tracking_uri() -> str:
    return mlflow.get_tracking_uri()


def check_tracking_server(timeout: float = 5.0) -> None:
    """Fail before any work if an HTTP tracking server is unreachable (not after an hour)."""
    uri = tracking_uri()
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
    new = {k: v for k, v in params.items() if k not in existing}
    items = list(new.items())
    for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        mlflow.log_params(dict(items[i : i + 100]))


@contextmanager
def step_run(
    step: str,
    config: StepConfig,
    *,
    tags: dict[str, Any] | None = None,
    run_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """The step's run: the one `mlflow run` opened (MLFLOW_RUN_ID), `run_id`, or a new one.

    Logs the resolved config once as `<step>.<field>` params (never clashing with the plain
    names `mlflow run` logs for -P parameters) and tags `gz.step`, `gz.preset`, `gz.git_commit`
    and `gz.code_version`.
    """
    check_tracking_server()
    active = mlflow.active_run()
    if active is not None and run_id is None and not nested:
        context = _reuse(active)
    else:
        context = mlflow.start_run(run_id=run_id, run_name=run_name, nested=nested)
    with context as run:
        log_params_once(config.flatten(step))
        all_tags = {"step": step, "preset": config.preset, "git_commit": git_commit()}
        all_tags.update(tags or {})
        all_tags = {f"{TAG_PREFIX}{k}": str(v) for k, v in all_tags.items()}
        mlflow.set_tags({**all_tags, CODE_VERSION_TAG: code_version()})
        yield run


@contextmanager
def _reuse(run: mlflow.ActiveRun) -> Iterator[mlflow.ActiveRun]:
    yield run


def log_json(data: Any, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_file(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


def log_dir(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifacts(str(path), artifact_path)


def log_figure(figure, artifact_file: str) -> None:
    mlflow.log_figure(figure, artifact_file)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    clean = {_metric_key(k): float(v) for k, v in metrics.items()}
    mlflow.log_metrics(clean, step=step)


def _metric_key(key: str) -> str:
    # MLflow keys allow alphanumerics, _ - . / and space; answers like "more-than-4" are fine.
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({f"{TAG_PREFIX}{k}": str(v) for k, v in tags.items()})


def active_run_id() -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run")
    return run.info.run_id


def download_artifacts(run_id: str, path: str, dst: str | Path | None = None) -> Path:
    dst = dst or tempfile.mkdtemp(prefix="gz-artifacts-")
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=path, dst_path=str(dst)
    )
    return Path(local)


def write_json(data: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path


def env_flag(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes"}
