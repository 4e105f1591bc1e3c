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
            raise UserError(
                f"unknown preset {preset!r}: use one of auto, {', '.join(PRESET_NAMES)}"
            )
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
    """The embedded default dataset: rendered galaxies + simulated volunteers (gzd5 tree).

    The output depends only on n_galaxies, img_size, seed and the vote fields (see
    gz_experiments/simulate/dataset.py); n_workers changes the speed, never the bytes.
    """

    out_dir: str = ""  # "" = the cache: $GZ_CACHE_DIR (else ~/.cache/gz_experiments)/simulated/
    n_galaxies: int = 5000
    img_size: int = 128  # rendered at this size directly (GZ DECaLS images are 424)
    seed: int = 0
    votes_high: int = 40  # most GZD-5 galaxies got ~40 classifications ...
    votes_low: int = 5  # ... the early random sample about 5
    low_vote_fraction: float = 0.2
    n_workers: int = 0  # processes rendering images; 0 = all cores

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"n_galaxies": 64, "img_size": 64},  # < 1 s
        "cpu": {"n_galaxies": 5000, "img_size": 128},  # ~15 CPU-s, 160 MB
        # Rendered straight at the paper's training input size (it resized 424 -> 300): the
        # same pixels for half the time and disk of 424 (~4 GB, ~6 CPU-min).
        "paper": {"n_galaxies": 20000, "img_size": 300},
    }


@dataclass(frozen=True)
class ShardConfig(StepConfig):
    """Catalog -> TFRecord shards + manifest.json (paper: 300 px, greyscale, 70/10/20, 4096/file)."""

    catalog: str = ""  # labelled catalog -> train/val/test
    shard_dir: str = ""
    schema: str = "gzd5"
    img_size: int = 300
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    shard_size: int = 4096  # galaxies per TFRecord file
    greyscale: bool = True  # plain mean of the 3 bands at shard time, as the paper
    encoding: str = "raw"  # raw uint8 or png: png halves the disk, shards ~2x slower (bench_shards)
    unlabelled_catalog: str = ""  # -> the "predict" split, in catalog order
    max_labelled: int = 0  # 0 = no cap; a seeded random subset otherwise
    max_unlabelled: int = 0  # 0 = no cap; the first rows otherwise
    seed: int = 42
    overwrite: bool = False  # replace shards written from other inputs
    max_rejected_fraction: float = 0.0
    fill_missing_votes: bool = False
    missing_questions: str = "error"  # or "zero": questions with no columns were never asked
    n_workers: int = 0  # decode processes; 0 = all cores

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
        # small_cnn reaches ~25 % below the baseline loss in 40 epochs (~2.7 s each on 2 quiet
        # cores) and was still improving there, so `make demo` gets up to 100 with early stopping;
        # EfficientNetB0 at 48 px took ~10x longer per epoch for the same early progress.
        # 64 px shards, crop 0.75 -> 48 px: no resize, native scale.
        "cpu": {
            "architecture": "small_cnn",
            "image_size": 48,
            "batch_size": 32,
            "epochs": 100,
            "patience": 10,
        },
        "paper": {},
    }


@dataclass(frozen=True)
class PredictConfig(StepConfig):
    """MC-dropout predictions for a folder of images, a catalog or a shard folder."""

    model_uri: str = ""  # runs:/<id>/model, models:/<name>@<alias>, models:/<name>/<v>, or a path
    input: str = ""  # image folder, .csv/.parquet catalog with file_loc, or shard folder
    output: str = ""  # "" = only logged as the run's predictions.parquet artifact
    n_samples: int = 5  # MC passes (zoobot's examples use 5)
    mc_mode: str = "head"  # head: backbone once, dropout head n times; full: n full passes
    batch_size: int = 128
    output_format: str = ""  # parquet or csv; "" = csv if output ends in .csv, else parquet
    split: str = ""  # for a shard folder; "" = "predict" if it has one, else "test"
    seed: int = 0

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16},
        "cpu": {"batch_size": 64},
        "paper": {},
    }


@dataclass(frozen=True)
class RegisterConfig(StepConfig):
    """Register the best training run's model; move the alias only to a better one. No presets."""

    experiment: str = ""  # "" = the current experiment
    name: str = "gz-decals"
    run_id: str = ""
    alias: str = "champion"
    force: bool = False


@dataclass(frozen=True)
class EvaluateConfig(StepConfig):
    """The paper's protocol on a labelled shard split (see gz_experiments/evaluate.py)."""

    model_uri: str = ""  # runs:/<id>/model, models:/<name>@<alias>, models:/<name>/<v>, or a path
    shard_dir: str = ""
    split: str = "test"
    n_samples: int = 5  # MC passes per galaxy for fractions and the calibration mixture
    mc_mode: str = "head"  # head: backbone once, dropout head n times; full: n full passes
    batch_size: int = 128
    truth: str = ""  # simulator truth table (parquet); "" = look beside the shard's catalog
    seed: int = 0

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
    storage: str = ""  # "" = sqlite:///optuna.db in the working dir; journal:PATH; SQLAlchemy URL
    seed: int = 0  # trial n samples with seed + n, so resumed or parallel workers never repeat
    pruner: str = "median"  # median, percentile, hyperband or none
    pruner_startup_trials: int = 5  # trials that run to the end before pruning starts
    pruner_warmup_epochs: int = 2  # epochs of each trial before it can be pruned
    heartbeat_interval: int = 60  # seconds; a RUNNING trial silent for 3x this becomes FAILED
    n_workers: int = 1  # processes started here; with k GPUs worker i gets GPU i % k
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
            "pruner_startup_trials": 1,
            "pruner_warmup_epochs": 0,
        },
        "cpu": {
            "n_trials": 6,
            "epochs": 8,
            "image_size_choices": (32, 48),
            "batch_size_choices": (32, 64),
            "pruner_startup_trials": 2,
            "pruner_warmup_epochs": 2,
        },
        "paper": {},
    }


@dataclass(frozen=True)
class MainConfig(StepConfig):
    """simulate -> shard -> train -> evaluate -> register -> predict, as child runs."""

    env_manager: str = "local"  # passed down to every step's `mlflow run`
    model_name: str = "gz-decals"
    reuse: bool = True  # skip a step whose FINISHED run has the same params and git commit
    # Per-step parameters, "<step>.<param>=<value>,...", e.g. "train.epochs=3,simulate.seed=1".
    extra: dict[str, str] = field(default_factory=dict)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"debug": {}, "cpu": {}, "paper": {}}
