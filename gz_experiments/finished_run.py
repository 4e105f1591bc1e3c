"""What a finished step run recorded: the contract between the `main` pipeline and the runner
that runs (or reuses) its steps (tracking.projects.ProjectRunner)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FinishedRun:
    """A finished child run: what the pipeline reads the step's outputs from."""

    entry_point: str
    run_id: str
    reused: bool
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifact_uri: str = ""
