"""Every step command the README, the docs and the entry points' --help show is one that works:
its step exists, every flag or -P parameter is one the step has, every value passes the step's
config checks, and every ../shared/data path it names exists.

A command is a step command when it starts with `gz <step>`, `python -m entry_points.<step>` or
`mlflow run .` (entry point `-e <step>`, default `main`). Commands with placeholders (`<run id>`,
`...`) have their names checked but not their values. Running them is the job of the tests of
each step, the notebooks and the end-to-end tests; this test keeps the words in step with them.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from gz_experiments.cli import parse_config
from gz_experiments.config import STEP_CONFIGS

from .conftest import REPO, SHARED_DATA

FENCE = re.compile(r"```(bash|text)\n(.*?)```", re.S)
PLACEHOLDER = re.compile(r"<[^<>]+>|\.\.\.(?!/)")
PROJECT = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def logical_lines(text: str) -> list[str]:
    """Lines with their backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote in prose-like text: not a command
            continue
        if words:
            lines.append(words)
    return lines


def step_commands(words: list[str]) -> tuple[str, list[str]] | None:
    """(step, argv in `python -m entry_points.<step>` form), or None for other commands."""
    while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
        words = words[1:]
    if len(words) >= 2 and words[0] == "gz" and words[1] in STEP_CONFIGS:
        return words[1], words[2:]
    if len(words) >= 3 and words[:2] == ["python", "-m"] and words[2].startswith("entry_points."):
        step = words[2].removeprefix("entry_points.")
        return (step, words[3:]) if step in STEP_CONFIGS else None
    if words[:3] == ["mlflow", "run", "."]:
        return mlflow_run_argv(words[3:])
    return None


def mlflow_run_argv(words: list[str]) -> tuple[str, list[str]]:
    step, argv, i = "main", [], 0
    while i < len(words):
        word = words[i]
        if word == "-e":
            step, i = words[i + 1], i + 2
        elif word == "-P":
            name, _, value = words[i + 1].partition("=")
            assert name in PROJECT[step]["parameters"], f"mlflow run -e {step}: no -P {name}"
            argv += [f"--{name.replace('_', '-')}", value]
            i += 2
        else:  # --env-manager local, --experiment-name x: mlflow's own options
            i += 2 if word.startswith("--") and "=" not in word else 1
    return step, argv


def documented() -> list[tuple[str, str]]:
    found = []
    for path in documents():
        for _, block in FENCE.findall(path.read_text()):
            found += [
                (path.relative_to(REPO).as_posix(), shlex.join(w)) for w in logical_lines(block)
            ]
    for path in sorted((REPO / "entry_points").glob("*.py")):
        doc = re.match(r'r?"""(.*?)"""', path.read_text(), re.S)
        indented = "\n".join(
            line.strip() for line in (doc.group(1) if doc else "").splitlines()
            if line.startswith("    ")
        )  # fmt: skip
        found += [(f"entry_points/{path.name}", shlex.join(w)) for w in logical_lines(indented)]
    return [(where, line) for where, line in found if step_commands(shlex.split(line))]


COMMANDS = documented()


def test_the_documents_show_commands_of_every_kind():
    kinds = {line.split()[0] for _, line in COMMANDS}
    assert {"mlflow", "python", "gz"} <= kinds, kinds
    assert len(COMMANDS) > 30


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[f"{w}:{i}" for i, (w, _) in
                                                         enumerate(COMMANDS)])  # fmt: skip
def test_a_documented_step_command_parses_and_validates(where, line):
    step, argv = step_commands(shlex.split(line))
    flags = {f"--{name.replace('_', '-')}" for name in PROJECT[step]["parameters"]}
    given = {a.split("=")[0] for a in argv if a.startswith("--")} - {"--help"}
    assert given <= flags | {f"--{n}" for n in PROJECT[step]["parameters"]}, (
        f"{where}: {line!r} uses flags {sorted(given - flags)} that `{step}` does not have"
    )
    if PLACEHOLDER.search(line) or "--help" in argv:
        return
    paths = [part for value in argv for part in value.split(",") if part.startswith("../shared/")]
    for path in paths if SHARED_DATA.exists() else ():
        assert (REPO / path).exists(), f"{where}: {line!r} names {path}, which is absent"
    parse_config(STEP_CONFIGS[step], argv, None)  # a ConfigError fails the test with its reason
