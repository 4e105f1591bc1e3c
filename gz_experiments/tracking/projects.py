"""Running MLflow-project entry points as child runs, and finding finished runs to reuse.

As in MLflow's `multistep_workflow` example, a step is skipped when a FINISHED run of the same
entry point exists in the experiment with the same `-P` parameters; instead of that example's git
commit we match `gz.code_version`, a hash of the sources every step run records, so uncommitted
edits count as new code and a docs-only commit does not. A second `make demo` only re-runs what
changed. `mlflow.projects.run` nests the child under the active (parent) run by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import ExecutionException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PROJECT_ENTRY_POINT

from gz_experiments.errors import UserError
from gz_experiments.finished_run import FinishedRun
from gz_experiments.tracking.code_version import TAG as CODE_VERSION_TAG
from gz_experiments.tracking.code_version import code_version


def find_finished_run(
    entry_point: str, parameters: dict[str, str], source_version: str, experiment_id: str
) -> Run | None:
    """The newest FINISHED run of `entry_point` with these parameters and code version, if any."""
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{MLFLOW_PROJECT_ENTRY_POINT}` = '{entry_point}' "
            "and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    for run in runs:
        if run.data.tags.get(CODE_VERSION_TAG) != source_version:
            continue
        if all(run.data.params.get(k) == v for k, v in parameters.items()):
            return run
    return None


def _step_run(run: Run, entry_point: str, reused: bool) -> FinishedRun:
    return FinishedRun(
        entry_point=entry_point,
        run_id=run.info.run_id,
        reused=reused,
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
        artifact_uri=run.info.artifact_uri,
    )


class ProjectRunner:
    """Runs (or reuses) the entry points of one MLflow project under the active parent run."""

    def __init__(self, project_dir: str | Path, env_manager: str, reuse: bool = True):
        parent = mlflow.active_run()
        if parent is None:
            raise RuntimeError("ProjectRunner needs an active (parent) MLflow run")
        self.project_dir = str(Path(project_dir).resolve())
        self.env_manager = env_manager
        self.reuse = reuse
        self.experiment_id = parent.info.experiment_id
        self.code_version = code_version(self.project_dir)

    def run(
        self,
        entry_point: str,
        parameters: dict[str, str],
        outputs_exist: Callable[[FinishedRun], bool] | None = None,
    ) -> FinishedRun:
        """Reuse a matching FINISHED run (if `outputs_exist` says its files are still there,
        e.g. a cache folder was not wiped), else run the entry point and wait for it."""
        parameters = {k: str(v) for k, v in parameters.items()}
        if self.reuse:
            found = find_finished_run(
                entry_point, parameters, self.code_version, self.experiment_id
            )
            if found is not None:
                previous = _step_run(found, entry_point, reused=True)
                if outputs_exist is None or outputs_exist(previous):
                    return previous
        try:
            submitted = mlflow.projects.run(
                uri=self.project_dir,
                entry_point=entry_point,
                parameters=parameters,
                experiment_id=self.experiment_id,
                env_manager=self.env_manager,
                synchronous=True,
                run_name=entry_point,  # the UI lists the pipeline's children by step
            )
        except ExecutionException as exc:
            raise UserError(f"step {entry_point!r} failed: {exc}; see its output above") from None
        return _step_run(MlflowClient().get_run(submitted.run_id), entry_point, reused=False)


def ui_command() -> str:
    """The command that shows this tracking store in the MLflow UI, on the project's experiment."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"MLFLOW_TRACKING_URI={uri} gz ui"
