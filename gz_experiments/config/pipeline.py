"""Configs of the pipelines of child runs: `main` (the demo on the simulator) and `pretrain`
(one model on every campaign at once)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from gz_experiments.campaigns import BALANCE_CHOICES
from gz_experiments.config.base import StepConfig, setting
from gz_experiments.config.combine import CampaignFields
from gz_experiments.config.training import CAMPAIGN_BALANCE_HELP


@dataclass(frozen=True)
class PipelineFields:
    """How a pipeline runs its steps: each an `mlflow run` child of the pipeline's run."""

    env_manager: str = setting("local", "passed down to every step's mlflow run")
    reuse: bool = setting(True, "reuse a step's FINISHED run with the same params and code")
    extra: dict[str, str] = setting(
        help="per-step parameters: train.epochs=3,simulate.seed=1", default_factory=dict
    )


@dataclass(frozen=True)
class MainConfig(PipelineFields, StepConfig):
    """simulate -> shard -> train -> evaluate -> register -> predict, as child runs."""

    STEP: ClassVar[str] = "main"
    model_name: str = setting("gz-decals", "registered model name")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"debug": {}, "cpu": {}, "paper": {}}


@dataclass(frozen=True)
class PretrainConfig(CampaignFields, PipelineFields, StepConfig):
    """combine -> shard -> train -> evaluate -> register over several campaigns, as child runs."""

    STEP: ClassVar[str] = "pretrain"
    out: str = setting("", "work folder: out/combined (catalog, tree) and out/shards")
    model_name: str = setting("gz-foundation", "registered model name")
    campaign_balance: str = setting("equal", CAMPAIGN_BALANCE_HELP, choices=BALANCE_CHOICES)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"debug": {}, "cpu": {}, "paper": {}}

    def problems(self) -> Iterator[str]:
        yield from self.campaign_problems()
        if not self.out:
            yield "out is empty: give the work folder (the combined catalog and its shards)"
