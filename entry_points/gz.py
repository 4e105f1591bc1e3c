"""`gz`: one command with a sub-command per step, in pipeline order.

    gz --help                      # the steps, one line each
    gz train --preset debug        # = python -m entry_points.train --preset debug
                                   # = mlflow run . -e train -P preset=debug --env-manager local
    gz ui                          # the MLflow UI on this project's store, opened on galaxy-zoo

A sub-command is the step's own entry point, called with the rest of the command line: its
flags, help and checks come from the step's config exactly as for `python -m entry_points.<step>`
and the MLproject (all three are generated from `gz_experiments.config.STEP_CONFIGS`). Like the
other entry points, `gz` logs to the MLflow experiment `galaxy-zoo` unless MLFLOW_EXPERIMENT_NAME
(or _ID) says otherwise, and to ./mlflow.db unless MLFLOW_TRACKING_URI says otherwise.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

from gz_experiments.cli import ui_main
from gz_experiments.config import STEP_CONFIGS

UI = "ui"


def module_name(step: str) -> str:
    return f"entry_points.{step.replace('-', '_')}"


def step_main(step: str) -> Callable[..., Any]:
    """The `main(argv)` of a step's entry point (the one `python -m` and `mlflow run` call)."""
    return importlib.import_module(module_name(step)).main


def summary_line(step: str) -> str:
    """The first sentence of the step's entry-point docstring: what the step does."""
    doc = importlib.import_module(module_name(step)).__doc__ or ""
    first = " ".join(doc.strip().split("\n\n")[0].split()).split(". ")[0]
    return re.split(r" \(|, as an MLflow run|; |: ", first)[0].rstrip(".")


def usage() -> str:
    width = max(map(len, [*STEP_CONFIGS, UI]))
    lines = [
        "usage: gz <step> [--preset debug|cpu|real|paper|auto] [--<field> VALUE ...]",
        "       gz <step> --help      every flag of a step, with its default and range",
        "",
        "Galaxy Zoo experiments tracked in MLflow. Steps, in pipeline order:",
    ]
    lines += [f"  {step:<{width}}  {summary_line(step)}" for step in STEP_CONFIGS]
    lines += [
        f"  {UI:<{width}}  Open the MLflow UI on this project's tracking store",
        "",
        "Each step also runs as `python -m entry_points.<step>` and `mlflow run . -e <step>`.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The console script: what it returns becomes the exit status (setuptools' wrapper calls
    sys.exit(main())), so a step's result is never returned - it would exit 1 after success."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else 2)
    step, rest = argv[0], argv[1:]
    if step == UI:
        ui_main(rest)
        return
    if step not in STEP_CONFIGS:
        print(f"gz: unknown step {step!r}; the steps are: {', '.join(STEP_CONFIGS)}, {UI}",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    sys.argv[0] = f"gz {step}"  # argparse names the program after argv[0] in usage and errors
    step_main(step)(rest)


if __name__ == "__main__":
    main()
