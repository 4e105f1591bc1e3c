"""One frozen, self-validating config per step, with named presets (`debug`, `cpu`, `paper`).

Defaults are the paper's (Walmsley et al. 2022, see shared/reference/zoobot_facts.md). A preset
overrides some fields; the user's values win over the preset; `auto` means `paper` when a GPU is
visible and `cpu` otherwise. Field declarations (type, help, allowed range) drive validation,
the command-line flags and the generated MLproject alike (`base.setting`).
"""

from gz_experiments.config.acquisition import AcquireConfig
from gz_experiments.config.base import (
    PRESET_NAMES,
    ConfigError,
    Settings,
    StepConfig,
    flatten_dict,
    gpu_visible,
    setting,
)
from gz_experiments.config.combine import CombineConfig
from gz_experiments.config.data import ShardConfig, SimulateConfig
from gz_experiments.config.encoders import ImportEncoderConfig
from gz_experiments.config.inference import (
    MC_MODES,
    EvaluateConfig,
    PredictConfig,
    RegisterConfig,
    Sampling,
)
from gz_experiments.config.ingest import IngestConfig
from gz_experiments.config.pipeline import MainConfig, PretrainConfig
from gz_experiments.config.representation import EmbedConfig
from gz_experiments.config.training import FinetuneConfig, TrainConfig, TuneConfig

# Every step's config by step name: the CLI, the MLproject generator and `main` look them up here.
STEP_CONFIGS: dict[str, type[StepConfig]] = {
    cls.STEP: cls
    for cls in (
        SimulateConfig,
        IngestConfig,
        CombineConfig,
        ShardConfig,
        TrainConfig,
        FinetuneConfig,
        ImportEncoderConfig,
        EvaluateConfig,
        RegisterConfig,
        PredictConfig,
        EmbedConfig,
        AcquireConfig,
        TuneConfig,
        PretrainConfig,
        MainConfig,
    )
}

__all__ = [
    "MC_MODES",
    "PRESET_NAMES",
    "STEP_CONFIGS",
    "AcquireConfig",
    "CombineConfig",
    "ConfigError",
    "EmbedConfig",
    "EvaluateConfig",
    "FinetuneConfig",
    "ImportEncoderConfig",
    "IngestConfig",
    "MainConfig",
    "PredictConfig",
    "PretrainConfig",
    "RegisterConfig",
    "Sampling",
    "Settings",
    "ShardConfig",
    "SimulateConfig",
    "StepConfig",
    "TrainConfig",
    "TuneConfig",
    "flatten_dict",
    "gpu_visible",
    "setting",
]
