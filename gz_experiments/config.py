"""One frozen, typed config per step, with named presets.

Defaults are the paper's (Walmsley et al. 2022, see shared/reference/zoobot_facts.md). A preset
(`debug`, `cpu`, `paper`) overrides some fields; command-line overrides win over the preset. The
preset `auto` means `paper` when a GPU is visible and `cpu` otherwise.

    cfg = TrainConfig.resolve("debug", epochs=3)
    cfg.flatten("train")  ->  {"train.epochs": "3", ...}   # logged once as MLflow params
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from gz_experiments.errors import UserError

PRESET_NAMES = ("debug", "cpu", "paper")


def gpu_visible() -> bool:
    # Importing TensorFlow costs seconds, so only do it when a preset actually depends on it.
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@dataclass(frozen=True)
class StepConfig:
    """Base of every step's config: presets, resolution from overrides, flattening for MLflow."""

    preset: str = "paper"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def resolve(cls, preset: str | None = None, **overrides: Any) -> Self:
        """Preset values, then the non-None overrides; unknown names are a UserError."""
        preset = preset or "auto"
        if preset == "auto":
            preset = "paper" if gpu_visible() else "cpu"
        if preset not in PRESET_NAMES:
            raise UserError(f"unknown preset {preset!r}: use one of auto, {', '.join(PRESET_NAMES)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UserError(
                f"{cls.__name__} has no field(s) {unknown}; known fields: {sorted(known - {'preset'})}"
            )
        values = dict(cls.PRESETS.get(preset, {}))
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["preset"] = preset
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flatten(self, prefix: str) -> dict[str, str]:
        """Dotted keys (`train.batch_size`) as strings: the form MLflow params take."""
        return flatten_dict(self.to_dict(), prefix)


def flatten_dict(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten_dict(value, name))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = "" if value is None else str(value)
    return out


# ---- per-step configs ---------------------------------------------------------------------
# Each step owns its class below; entry points build their flags from these fields.


@dataclass(frozen=True)
class SimulateConfig(StepConfig):
    """The embedded default dataset: rendered galaxies + simulated volunteers (gzd5 tree)."""

    out_dir: str = ""  # "" = the default-dataset cache folder
    n_galaxies: int = 5000
    img_size: int = 128
    seed: int = 0
    votes_high: int = 40  # most GZD-5 galaxies got ~40 classifications ...
    votes_low: int = 5  # ... the early random sample about 5
    low_vote_fraction: float = 0.2
    n_workers: int = 0  # 0 = all cores

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"n_galaxies": 64, "img_size": 64},
        "cpu": {"n_galaxies": 5000, "img_size": 128},
        "paper": {"n_galaxies": 20000, "img_size": 424},
    }


@dataclass(frozen=True)
class ShardConfig(StepConfig):
    """Catalog -> TFRecord shards + manifest."""

    catalog: str = ""
    shard_dir: str = ""
    schema: str = "gzd5"
    img_size: int = 300
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    shard_size: int = 4096
    greyscale: bool = True
    encoding: str = "png"
    unlabelled_catalog: str = ""
    max_labelled: int = 0  # 0 = no cap
    max_unlabelled: int = 0
    seed: int = 42
    overwrite: bool = False
    max_rejected_fraction: float = 0.0
    fill_missing_votes: bool = False
    n_workers: int = 0

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"img_size": 32, "shard_size": 32},
        "cpu": {"img_size": 64, "shard_size": 1024},
        "paper": {},
    }


@dataclass(frozen=True)
class TrainConfig(StepConfig):
    """Training: paper defaults are 300 -> crop 0.75 -> 224, greyscale, batch 128, B0, dropout 0.2."""

    shard_dir: str = ""  # "" = simulate + shard the embedded default dataset (cached)
    schema: str = "gzd5"
    architecture: str = "efficientnetb0"
    crop_fraction: float = 0.75
    image_size: int = 224  # the final size after crop + resize
    greyscale: bool = True
    batch_size: int = 128
    epochs: int = 1000
    patience: int = 8
    learning_rate: float = 1e-3
    dropout: float = 0.2
    seed: int = 42
    mixed_precision: bool = False
    shuffle_buffer: int = 1024
    steps_per_epoch: int = 0  # 0 = one pass over the training split
    resume_run_id: str = ""
    verbose: int = -1  # -1 = progress bar on a terminal, one line per epoch otherwise

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {
            "architecture": "small_cnn",
            "image_size": 24,
            "batch_size": 16,
            "epochs": 2,
            "patience": 2,
        },
        "cpu": {"image_size": 48, "batch_size": 32, "epochs": 30, "patience": 5},
        "paper": {},
    }


@dataclass(frozen=True)
class PredictConfig(StepConfig):
    model_uri: str = ""
    input: str = ""
    output: str = ""  # "" = predictions.parquet in a temp dir, logged as an artifact
    n_samples: int = 5
    mc_mode: str = "head"  # head: backbone once, dropout head n times; full: n full passes
    batch_size: int = 128
    output_format: str = "parquet"
    seed: int = 0

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16},
        "cpu": {"batch_size": 64},
        "paper": {},
    }


@dataclass(frozen=True)
class RegisterConfig(StepConfig):
    experiment: str = ""
    name: str = "gz-decals"
    run_id: str = ""
    alias: str = "champion"
    force: bool = False


@dataclass(frozen=True)
class EvaluateConfig(StepConfig):
    model_uri: str = ""
    shard_dir: str = ""
    split: str = "test"
    n_samples: int = 5
    batch_size: int = 128
    truth: str = ""  # simulator truth table (parquet); "" = look beside the shard's catalog

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16, "n_samples": 2},
        "cpu": {"batch_size": 64},
        "paper": {},
    }


@dataclass(frozen=True)
class TuneConfig(StepConfig):
    """Optuna search over crop / image size / dropout / learning rate / batch size."""

    shard_dir: str = ""
    schema: str = "gzd5"
    n_trials: int = 20
    study_name: str = "gz-tune"
    storage: str = ""  # "" = sqlite:///optuna.db in the working dir
    seed: int = 0
    pruner: str = "median"
    n_workers: int = 1
    crop_fraction_range: tuple[float, float] = (0.6, 0.9)
    image_size_choices: tuple[int, ...] = (128, 160, 224)
    dropout_range: tuple[float, float] = (0.1, 0.5)
    learning_rate_range: tuple[float, float] = (1e-4, 3e-3)
    batch_size_choices: tuple[int, ...] = (64, 128)
    epochs: int = 30
    register_best: bool = False
    model_name: str = "gz-decals"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {
            "n_trials": 3,
            "epochs": 2,
            "image_size_choices": (16, 24),
            "batch_size_choices": (8, 16),
        },
        "cpu": {
            "n_trials": 6,
            "epochs": 8,
            "image_size_choices": (32, 48),
            "batch_size_choices": (32, 64),
        },
        "paper": {},
    }


@dataclass(frozen=True)
class MainConfig(StepConfig):
    """simulate -> shard -> train -> evaluate -> register -> predict, as child runs."""

    env_manager: str = "local"
    model_name: str = "gz-decals"
    extra: dict[str, str] = field(default_factory=dict)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"debug": {}, "cpu": {}, "paper": {}}
