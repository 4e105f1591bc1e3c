"""The MLproject file is generated from the step configs and every command parses."""

from __future__ import annotations

import shlex

import yaml

from gz_experiments.cli import build_parser
from gz_experiments.config import STEP_CONFIGS
from gz_experiments.mlproject import render

from .conftest import REPO


def test_mlproject_is_up_to_date_with_the_configs():
    assert (REPO / "MLproject").read_text() == render(), "run `make mlproject` and commit it"


def test_every_entry_point_command_parses_with_its_defaults():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    assert set(project["entry_points"]) == set(STEP_CONFIGS)
    for step, spec in project["entry_points"].items():
        values = {k: (v.get("default") or "") for k, v in spec["parameters"].items()}
        values.update({k: "x" for k, v in spec["parameters"].items() if "default" not in v})
        command = spec["command"].format(**{k: shlex.quote(str(v)) for k, v in values.items()})
        argv = shlex.split(command)[3:]  # after `python -m entry_points.<step>`
        parsed = build_parser(STEP_CONFIGS[step], None).parse_args(argv)
        assert parsed.preset == values["preset"], step
        assert all(spec["parameters"][k]["type"] in ("string", "float") for k in spec["parameters"])
