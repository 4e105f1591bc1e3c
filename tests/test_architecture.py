"""The shape of the library, checked from its import graph (static, without importing it):

- tracking/ (the only MLflow code) imports results, names and configs, never what runs a step;
- step logic imports neither MLflow nor argparse; only tuning/ imports Optuna;
- entry points import no step internals beyond the step's function (they parse, open, call, log).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

PACKAGE = REPO / "gz_experiments"
# What tracking may import from the library: configs, the domain model, data contracts,
# result presentation (plots, table names) and the served model's constants.
TRACKING_MAY_IMPORT = (
    "gz_experiments.config",
    "gz_experiments.errors",
    "gz_experiments.schema",
    "gz_experiments.model_spec",
    "gz_experiments.models",
    "gz_experiments.step_run",
    "gz_experiments.shards.manifest",
    "gz_experiments.prediction.tables",
    "gz_experiments.evaluation.plots",
    "gz_experiments.acquisition.plots",
    "gz_experiments.training.plots",
    "gz_experiments.prediction.parameters",
    "gz_experiments.model_files",
    "gz_experiments.tracking",
)
# Models logged before the redesign load their pyfunc class through tracking.models: a lazy
# alias kept so their registered versions still load.
COMPATIBILITY = {("models.py", "gz_experiments.serving.model")}
# MLflow lives in tracking/ and in the served model (an mlflow.pyfunc model by definition).
MLFLOW_HOMES = ("tracking", "serving")


def runtime_imports(path: Path) -> set[str]:
    """Modules imported by a file, at any depth, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", modules(PACKAGE / "tracking"), ids=lambda p: p.name)
def test_tracking_imports_nothing_that_runs_a_step(path):
    ours = {m for m in runtime_imports(path) if m.startswith("gz_experiments")}
    bad = sorted(
        m
        for m in ours
        if not m.startswith(TRACKING_MAY_IMPORT) and (path.name, m) not in COMPATIBILITY
    )
    assert not bad, f"{path.relative_to(REPO)} imports step logic: {bad}"


@pytest.mark.parametrize("path", modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_step_logic_has_no_mlflow_argparse_or_stray_optuna(path):
    relative = path.relative_to(PACKAGE)
    imported = {m.split(".")[0] for m in runtime_imports(path)}
    if relative.parts[0] not in MLFLOW_HOMES:
        assert "mlflow" not in imported, f"{relative} talks to MLflow outside tracking/"
    if relative.parts[0] != "tuning":
        assert "optuna" not in imported, f"{relative} imports optuna outside tuning/"
    if relative.name != "cli.py":
        assert "argparse" not in imported, f"{relative} parses arguments outside cli.py"


@pytest.mark.parametrize("path", modules(REPO / "entry_points"), ids=lambda p: p.name)
def test_entry_points_only_parse_open_call_and_log(path):
    text = path.read_text()
    assert "mlflow.log_" not in text and "mlflow.start_run" not in text, (
        f"{path.name}: logging belongs in gz_experiments/tracking"
    )
    assert "argparse" not in runtime_imports(path), (
        f"{path.name}: flags come from gz_experiments.cli"
    )
