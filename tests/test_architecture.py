"""The shape of the library, checked from its import graph (static, without importing it):

- tracking/ (the only MLflow code) imports results, names and configs, never what runs a step;
- step logic imports neither MLflow nor argparse; only tuning/ imports Optuna;
- entry points import no step internals beyond the step's function (they parse, open, call, log);
- the import graph has no cycles, and nothing imports from a layer above its own (`LAYERS`);
- the vote model's maths (gamma functions, Dirichlet and multinomial draws) live only in
  votes/dirichlet_multinomial.py, and each consumer of the vote model imports it;
- every third-party module the package imports is a declared dependency (an optional extra only
  when imported lazily, inside the function that needs it).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
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
    "gz_experiments.finished_run",
    "gz_experiments.shards.manifest",
    "gz_experiments.prediction.tables",
    "gz_experiments.evaluation.plots",
    "gz_experiments.simulate.preview",
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


def import_nodes(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """A file's import statements at any depth, except under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def runtime_imports(path: Path) -> set[str]:
    """Modules imported by a file, at any depth, except under `if TYPE_CHECKING:`."""
    found: set[str] = set()
    for node in import_nodes(path):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif node.module and node.level == 0:
            found.add(node.module)
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


STEP_ENTRY_POINTS = [
    # gz.py dispatches to the others; main.py runs them all
    p
    for p in modules(REPO / "entry_points")
    if p.stem not in ("__init__", "main", "gz")
]


@pytest.mark.parametrize("path", STEP_ENTRY_POINTS, ids=lambda p: p.name)
def test_every_step_has_the_same_shape(path):
    """`run_<step>` does the work; `main` is summary_main (parse, run, print, one-line errors)."""
    text = path.read_text()
    assert f"run_{path.stem}" in text, f"{path.name}: the library entry must be run_{path.stem}"
    assert re.search(r"^main = summary_main\(", text, re.MULTILINE), (
        f"{path.name}: end with main = summary_main(<Config>, run, __doc__, show=...)"
    )


# ---- layers and cycles ---------------------------------------------------------------------

# Top-level modules and packages of gz_experiments, lowest first: a module may import its own
# layer and the layers below, never above. A new top-level module must be placed here.
LAYERS = (
    (
        "errors",
        "quiet",
        "progress",
        "processes",
        "finished_run",
        "atomic",
        "csv_cells",
    ),  # no domain knowledge
    ("schema", "campaigns", "images", "trees"),  # decision trees (one or several); pixels
    ("config", "catalog", "model_spec", "votes"),  # step configs, tables, the vote model
    (
        "mlproject",
        "docs_pages",
        "augment",
        "fused_batchnorm",
        "losses",
        "metrics",
        "models",
        "model_files",
        "encoders",
    ),  # fmt: skip
    ("simulate", "ingest", "combine"),  # where catalogs come from
    ("shards",),
    ("training", "prediction"),
    ("evaluation", "representation", "tuning"),  # steps built on prediction
    ("acquisition",),
    ("serving",),
    ("pipeline", "pretrain"),  # steps of child runs, through an injected runner
    ("tracking",),  # the only MLflow code; logs every step's result
    ("cli",),
)
LAYER_OF = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


ALL_MODULES = {module_name(p): p for p in modules(PACKAGE)}


def imported_modules(path: Path) -> set[str]:
    """Our modules a file imports at runtime: `from pkg import submodule` counts as the
    submodule, `from pkg import name` as the package (whose __init__ runs)."""
    found: set[str] = set()
    for node in import_nodes(path):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in ALL_MODULES else node.module)
    return found & set(ALL_MODULES)


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_module_has_a_layer():
    units = {unit(m) for m in ALL_MODULES} - {""}
    assert not units - set(LAYER_OF), f"place {sorted(units - set(LAYER_OF))} in LAYERS"


@pytest.mark.parametrize("module", sorted(ALL_MODULES))
def test_nothing_imports_from_a_higher_layer(module):
    if not unit(module):
        return
    upward = sorted(
        m
        for m in imported_modules(ALL_MODULES[module])
        if unit(m) and LAYER_OF[unit(m)] > LAYER_OF[unit(module)]
    )
    assert not upward, f"{module} (layer {unit(module)}) imports upward: {upward}"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_import_graph_has_no_cycles():
    graph = {m: imported_modules(p) - {m} for m, p in ALL_MODULES.items()}
    assert import_cycles(graph) == [], "import cycles (lazy imports included)"


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_the_package_never_imports_the_entry_points():
    for path in modules(PACKAGE):
        assert not any(m.startswith("entry_points") for m in runtime_imports(path)), path


# ---- the vote model has one home ------------------------------------------------------------

VOTE_MODEL = PACKAGE / "votes" / "dirichlet_multinomial.py"
VOTE_MATHS = {"gammaln", "lgamma", "digamma", "dirichlet", "multinomial", "betabinom"}
# The Sersic light profile's normalisation needs the gamma function too: images, not votes.
NOT_VOTES = {PACKAGE / "simulate" / "profiles.py"}
# Every module that computes with the vote model, through the vote model.
VOTE_CONSUMERS = (
    "losses.py",
    "metrics.py",
    "votes/information.py",
    "evaluation/protocol.py",
    "prediction/tables.py",
    "acquisition/run.py",
    "acquisition/loop.py",
    "simulate/volunteers.py",
)


def names_used(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.name.rsplit(".", 1)[-1])
    return found


@pytest.mark.parametrize("path", modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_vote_maths_only_in_the_vote_module(path):
    if path == VOTE_MODEL or path in NOT_VOTES:
        return
    stray = sorted(names_used(path) & VOTE_MATHS)
    assert not stray, (
        f"{path.relative_to(REPO)} computes vote maths ({stray}): use gz_experiments.votes"
    )


@pytest.mark.parametrize("relative", VOTE_CONSUMERS)
def test_each_vote_consumer_goes_through_the_vote_module(relative):
    assert "gz_experiments.votes.dirichlet_multinomial" in runtime_imports(PACKAGE / relative)


# ---- declared dependencies are the imported ones ---------------------------------------------

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def distribution(requirement: str) -> str:
    return re.split(r"[<>=\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def third_party_imports(path: Path, top_level_only: bool) -> set[str]:
    """Top-level names of modules imported from outside the standard library and this repo."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    ours = {"gz_experiments", "entry_points", "__future__"}
    return {m for m in found if m not in sys.stdlib_module_names and m not in ours}


def declared(requirements) -> set[str]:
    return {distribution(r) for r in requirements}


@cache
def installed_distributions() -> dict[str, list[str]]:
    return packages_distributions()


def distributions_of(module: str) -> set[str]:
    names = installed_distributions().get(module, [module])
    return {d.lower().replace("_", "-") for d in names}


@pytest.mark.parametrize("path", modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imported_modules_are_declared_dependencies(path):
    runtime = declared(PYPROJECT["dependencies"])
    extras = declared(
        r
        for name, reqs in PYPROJECT["optional-dependencies"].items()
        if name != "dev"
        for r in reqs
    )
    at_top = third_party_imports(path, top_level_only=True)
    for module in third_party_imports(path, top_level_only=False):
        wanted = distributions_of(module)
        if wanted & runtime:
            continue
        assert module not in at_top and wanted & extras, (
            f"{path.relative_to(REPO)} imports {module}: declare it in pyproject.toml's "
            f"dependencies, or in an extra and import it inside the function that needs it"
        )
