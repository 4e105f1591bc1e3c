"""Config of the `main` pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gz_experiments.config.base import StepConfig, setting


@dataclass(frozen=True)
class MainConfig(StepConfig):
    """simulate -> shard -> train -> evaluate -> register -> predict, as child runs."""

    STEP: ClassVar[str] = "main"
    env_manager: str = setting("local", "passed down to every step's mlflow run")
    model_name: str = setting("gz-decals", "registered model name")
    reuse: bool = setting(True, "reuse a step's FINISHED run with the same params and code")
    extra: dict[str, str] = setting(
        help="per-step parameters: train.epochs=3,simulate.seed=1", default_factory=dict
    )

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"debug": {}, "cpu": {}, "paper": {}}
