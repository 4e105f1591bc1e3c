"""The MLproject file, generated from the step configs (so its parameters never drift from them).

    python -m gz_experiments.mlproject > MLproject      # `make mlproject`; a test checks it

Every config field is a parameter of its entry point, typed `float` for numbers (MLflow's only
numeric type) and `string` otherwise, with an empty default: the step's preset decides, and
the field's description and range are written beside it. Fields a step cannot do without have no
default, so `mlflow run` itself asks for them.
"""

from __future__ import annotations

import typing
from dataclasses import fields

from gz_experiments.config import STEP_CONFIGS, StepConfig
from gz_experiments.config.base import base_type, field_types

# The preset each entry point runs with when none is given: `auto` (paper with a GPU, cpu
# without), as for `gz` and `python -m`; `main` is the demo (cpu), and register has no
# preset-dependent fields (cpu avoids probing for a GPU).
DEFAULT_PRESETS = {"main": "cpu", "register": "cpu"}
REQUIRED = {
    "predict": ("model_uri", "input"),
    "evaluate": ("model_uri", "shard_dir"),
    "embed": ("model_uri", "input"),
    "acquire": ("model_uri", "input"),
    "import_encoder": ("source",),
}
# Values the pipeline has always passed through MLproject defaults (kept for `mlflow run` users).
FIXED_DEFAULTS = {
    "main": {"env_manager": "local", "model_name": "gz-decals", "reuse": "true"},
    "register": {"name": "gz-decals", "alias": "champion", "force": "false"},
    "train": {"schema": "gzd5"},
    "shard": {"schema": "gzd5"},
    "evaluate": {"split": "test"},
}
HEADER = """\
# GENERATED from the step configs by `python -m gz_experiments.mlproject` (make mlproject):
# edit gz_experiments/config/, not this file. Parameters left "" take the step's preset value
# (debug / cpu / paper; auto = paper with a GPU, cpu without). See README.md.
name: gz_experiments

entry_points:
"""


def mlflow_type(annotation) -> str:
    kind = base_type(annotation)
    return "float" if kind in (int, float) and typing.get_origin(kind) is None else "string"


def entry_point(step: str, config_cls: type[StepConfig]) -> str:
    hints = field_types(config_cls)
    required = REQUIRED.get(step, ())
    fixed = FIXED_DEFAULTS.get(step, {})
    lines = [f"  {step}:", "    parameters:"]
    flags = []
    for f in fields(config_cls):
        if f.name == "preset":
            spec = f'{{type: string, default: "{DEFAULT_PRESETS.get(step, "auto")}"}}'
        elif f.name in required:
            spec = f"{{type: {mlflow_type(hints[f.name])}}}"
        else:
            default = fixed.get(f.name, "")
            spec = f'{{type: {mlflow_type(hints[f.name])}, default: "{default}"}}'
        note = config_cls.describe(f.name) if f.name != "preset" else ""
        comment = f"  # {note}" if note else ""
        lines.append(f"      {f.name}: {spec}{comment}")
        flags.append(f"--{f.name.replace('_', '-')} {{{f.name}}}")
    lines.append(f'    command: "python -m entry_points.{step} {" ".join(flags)}"')
    return "\n".join(lines)


def render() -> str:
    blocks = [entry_point(step, cls) for step, cls in STEP_CONFIGS.items()]
    return HEADER + "\n\n".join(blocks) + "\n"


if __name__ == "__main__":
    print(render(), end="")
