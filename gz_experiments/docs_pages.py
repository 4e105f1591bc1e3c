"""The generated parts of the documentation site: each step's parameters and description.

A step page in `docs/steps/` is prose written by hand plus two markers that the site's build
(`docs/hooks.py`) replaces with text generated here, from the same sources as the MLproject:

    <!-- gz:docstring train -->     the entry point's module docstring (what the step does)
    <!-- gz:parameters train -->    every config field: flag, MLproject type and default,
                                    each preset's value, description and allowed range

so a parameter is never copied by hand and cannot drift from `gz_experiments/config/`.

    python -m gz_experiments.docs_pages train      # print the generated parameter table
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from gz_experiments.config import PRESET_NAMES, STEP_CONFIGS, StepConfig
from gz_experiments.config.base import PRESET_FALLBACK, field_types
from gz_experiments.mlproject import DEFAULT_PRESETS, FIXED_DEFAULTS, REQUIRED, mlflow_type

MARKER = re.compile(r"<!-- gz:(docstring|parameters) ([a-z_]+) -->")


def entry_point_docstring(step: str) -> str:
    """The module docstring of `entry_points/<step>.py`, read without importing the step (which
    would load TensorFlow and MLflow into the docs build)."""
    spec = importlib.util.find_spec(f"entry_points.{step}")
    if spec is None or spec.origin is None:
        raise KeyError(f"no entry point module entry_points.{step}")
    source = Path(spec.origin).read_text(encoding="utf-8")
    return ast.get_docstring(ast.parse(source)) or ""


def docstring_block(step: str) -> str:
    """The docstring as a literal block: it is written for `--help`, with its own line breaks."""
    return f"```text\n{entry_point_docstring(step)}\n```"


def _show(value: object) -> str:
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    elif isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, bool):
        value = str(value).lower()
    text = str(value)
    return f"`{text}`" if text else "(empty)"


def _cell(text: str) -> str:
    # A `|` inside a table cell would end the cell; line breaks would end the row.
    return text.replace("|", "\\|").replace("\n", " ")


def preset_values(config_cls: type[StepConfig], name: str) -> dict[str, object]:
    """The field's value under each preset (the field's default where the preset leaves it)."""
    f = next(f for f in fields(config_cls) if f.name == name)
    default = f.default if f.default is not MISSING else f.default_factory()
    values = {}
    for preset in PRESET_NAMES:
        overrides = config_cls.PRESETS.get(preset)
        if overrides is None:
            overrides = config_cls.PRESETS.get(PRESET_FALLBACK.get(preset), {})
        values[preset] = overrides.get(name, default)
    return values


def mlproject_default(step: str, name: str) -> str:
    """What the MLproject passes when `-P name=` is not given (as `mlproject.entry_point`)."""
    if name == "preset":
        return f"`{DEFAULT_PRESETS.get(step, 'auto')}`"
    if name in REQUIRED.get(step, ()):
        return "**required**"
    fixed = FIXED_DEFAULTS.get(step, {}).get(name, "")
    return f"`{fixed}`" if fixed else "empty"


def parameters_table(step: str) -> str:
    """Markdown table of every parameter of a step, in the MLproject's order."""
    config_cls = STEP_CONFIGS[step]
    hints = field_types(config_cls)
    header = [
        "parameter",
        "flag",
        "MLproject type",
        "`mlflow run` default",
        *PRESET_NAMES,
        "meaning",
    ]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for f in fields(config_cls):
        if f.name == "preset":
            presets = ["", "", "", ""]
            meaning = "debug, cpu, real or paper; auto = paper with a GPU, else cpu"
        else:
            presets = [_show(v) for v in preset_values(config_cls, f.name).values()]
            meaning = config_cls.describe(f.name)
        cells = [
            f"`{f.name}`",
            f"`--{f.name.replace('_', '-')}`",
            mlflow_type(hints[f.name]),
            mlproject_default(step, f.name),
            *presets,
            meaning,
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    note = (
        f"`mlflow run . -e {step} -P <parameter>=<value>` or "
        f"`python -m entry_points.{step} --<flag> <value>`. An empty value takes the preset's "
        "(the preset columns); `real` falls back to `cpu` where it sets nothing of its own."
    )
    return note + "\n\n" + "\n".join(rows)


def expand(markdown: str) -> str:
    """Replace every `<!-- gz:... <step> -->` marker of a page with its generated text."""

    def generated(match: re.Match[str]) -> str:
        kind, step = match.groups()
        if step not in STEP_CONFIGS:
            known = ", ".join(STEP_CONFIGS)
            raise KeyError(f"unknown step {step!r} in a gz:{kind} marker; known: {known}")
        return docstring_block(step) if kind == "docstring" else parameters_table(step)

    return MARKER.sub(generated, markdown)


def on_page_markdown(markdown: str, **_: object) -> str:
    """MkDocs hook (`hooks:` in mkdocs.yml): expand the markers of every page as it is built."""
    return expand(markdown)


if __name__ == "__main__":
    for name in sys.argv[1:] or list(STEP_CONFIGS):
        print(f"## {name}\n\n{parameters_table(name)}\n")
