"""Configs of the training steps: train, finetune and tune."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from gz_experiments.campaigns import BALANCE_CHOICES
from gz_experiments.config.base import StepConfig, setting

# gz_experiments.models.ARCHITECTURES; the timm twins train from scratch or take imported weights.
ARCHITECTURE_NAMES = ("efficientnetb0", "small_cnn", "convnext_nano", "convnext_tiny",
                      "convnext_small", "convnext_base", "efficientnet_b0", "tf_efficientnet_b0",
                      "resnet50")  # fmt: skip
MAX_MODEL_SIDE = 1024
PRUNERS = ("median", "percentile", "hyperband", "none")
FINETUNE_MODES = ("frozen", "last_n_blocks", "all")
# Speed switches, measured on a 2-core AMD EPYC (Zen 4, avx512_bf16, no AMX) without GPU
# (benchmarks/bench_levers.py): XLA made the EfficientNetB0 train step and prediction ~9x
# slower there (64 px), bfloat16 the train step 0.6x; so "auto" turns both on only with a GPU.
MIXED_PRECISION_CHOICES = ("auto", "true", "false", "bfloat16")
MIXED_PRECISION_HELP = (
    "auto: mixed_float16 with a GPU, else float32; true: mixed_float16; bfloat16: "
    "mixed_bfloat16 (CPUs with AMX); the head and the loss stay float32"
)
CAMPAIGN_BALANCE_HELP = (
    "trees of several campaigns (combine, decals-all): equal = each campaign weighs the same in "
    "the training loss, whatever its size; none = each galaxy the same"
)
JIT_COMPILE_CHOICES = ("auto", "true", "false")
JIT_COMPILE_HELP = "XLA-compile the train step; auto: on with one GPU, off on CPU"


@dataclass(frozen=True)
class FitConfig(StepConfig):
    """The training loop's settings, the same for `train` and `finetune`: a finetune is a train
    whose model starts from a parent's encoder, so each of these means the same in both."""

    shard_dir: str = setting("", "shard folder; empty = the embedded default dataset (cached)")
    schema: str = setting("gzd5", "decision tree: a built-in name or a .yaml/.json file")
    batch_size: int = setting(128, "galaxies per step", ge=1, le=8192)
    epochs: int = setting(1000, "upper limit; early stopping usually ends sooner", ge=1, le=100_000)
    patience: int = setting(8, "epochs without a better validation loss before stopping", ge=1)
    learning_rate: float = setting(1e-3, "Adam learning rate", gt=0, le=1)
    lr_decay_patience: int = setting(
        0, "epochs without a better validation loss before the rate is lowered; 0 = never", ge=0
    )
    lr_decay_factor: float = setting(0.5, "what lowering multiplies the rate by", gt=0, lt=1)
    dropout: float = setting(0.2, "dropout before the head (MC dropout at prediction)", ge=0, lt=1)
    seed: int = setting(42, "weights, augmentation and shuffling", ge=0)
    mixed_precision: str = setting("auto", MIXED_PRECISION_HELP, choices=MIXED_PRECISION_CHOICES)
    jit_compile: str = setting("auto", JIT_COMPILE_HELP, choices=JIT_COMPILE_CHOICES)
    shuffle_buffer: int = setting(1024, "examples in the shuffle buffer", ge=1, le=10_000_000)
    steps_per_epoch: int = setting(0, "0 = one pass over the training split", ge=0)
    resume_run_id: str = setting("", "continue this unfinished run from its last checkpoint")
    verbose: int = setting(
        -1, "-1 auto, 0 silent, 1 progress bar, 2 one line per epoch", ge=-1, le=2
    )
    campaign_balance: str = setting("none", CAMPAIGN_BALANCE_HELP, choices=BALANCE_CHOICES)


@dataclass(frozen=True)
class TrainConfig(FitConfig):
    """Training: paper defaults are 300 -> crop 0.75 -> 224, greyscale, batch 128, B0, dropout 0.2."""

    STEP: ClassVar[str] = "train"
    architecture: str = setting("efficientnetb0", "encoder", choices=ARCHITECTURE_NAMES)
    crop_fraction: float = setting(0.75, "crop side / stored side, train and inference", gt=0, le=1)
    image_size: int = setting(
        224, "side the encoder sees, after crop + resize", ge=8, le=MAX_MODEL_SIDE
    )
    greyscale: bool = setting(True, "train on the band mean")

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
        # A few thousand real survey cutouts on a CPU (bench_real_gz2, bench_real_gz1): colour,
        # the central 0.65 of a 128-px shard (the galaxy and its outskirts; cutouts span several
        # of its radii) at 64 px, more patience for noisy validation losses. On Kaggle GZ2 this
        # gave an RMSE ratio of 0.62 where grey, crop 0.5, rate 5e-4 and 60 epochs gave 0.73-0.75.
        "real": {
            "architecture": "small_cnn",
            "image_size": 64,
            "crop_fraction": 0.65,
            "greyscale": False,
            "batch_size": 32,
            "epochs": 100,
            "patience": 10,
            "learning_rate": 1e-3,
        },
        "paper": {},
    }


@dataclass(frozen=True)
class FinetuneConfig(FitConfig):
    """Finetuning a trained model on a new tree: its encoder, a new head, new shards.

    Architecture, crop, image size and greyscale come from the parent model (the shards must
    hold images as it reads them); the other training fields mean what they mean for `train`.
    """

    STEP: ClassVar[str] = "finetune"
    model_uri: str = setting("", "parent: runs:/<id>/model, models:/<name>@<alias> or /<version>")
    shard_dir: str = setting("", "shard folder of the new task (same img_size as the parent)")
    schema: str = setting("", "tree of the new head; empty = the shards' own tree")
    mode: str = setting(
        "all",
        "frozen: train the head only; last_n_blocks: also the encoder's last n_blocks blocks; "
        "all: everything, with layer_decay",
        choices=FINETUNE_MODES,
    )
    n_blocks: int = setting(1, "encoder blocks trained in mode last_n_blocks", ge=1, le=64)
    layer_decay: float = setting(
        0.75, "learning rate x layer_decay^d for the encoder block d from the top", gt=0, le=1
    )
    # Finetuning converges in far fewer epochs than training from scratch.
    epochs: int = setting(100, "upper limit; early stopping usually ends sooner", ge=1, le=100_000)
    patience: int = setting(10, "epochs without a better validation loss before stopping", ge=1)
    learning_rate: float = setting(1e-3, "Adam learning rate of the head", gt=0, le=1)
    head_warmup_epochs: int = setting(
        0,
        "epochs that train only the new head (encoder frozen) before mode's blocks unfreeze, "
        "on top of epochs; 0 = none (modes last_n_blocks and all)",
        ge=0,
        le=1000,
    )

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16, "epochs": 2, "patience": 2},
        "cpu": {"batch_size": 32},
        "paper": {},
    }

    def problems(self) -> Iterator[str]:
        if self.head_warmup_epochs and self.mode == "frozen":
            yield (
                f"head_warmup_epochs={self.head_warmup_epochs} with mode=frozen: in that mode "
                f"only the head trains anyway; use mode=all or last_n_blocks, or 0"
            )


@dataclass(frozen=True)
class TuneConfig(StepConfig):
    """Optuna search over crop / image size / dropout / learning rate / batch size."""

    STEP: ClassVar[str] = "tune"
    shard_dir: str = setting("", "shard folder; empty = the embedded default dataset (cached)")
    schema: str = setting("gzd5", "decision tree: a built-in name or a .yaml/.json file")
    n_trials: int = setting(20, "trials this invocation adds to the study", ge=0, le=100_000)
    study_name: str = setting("gz-tune", "Optuna study (resumed when it exists)")
    storage: str = setting("", "empty = sqlite:///optuna.db; journal:PATH; an SQLAlchemy URL")
    seed: int = setting(0, "trial n samples with seed + n", ge=0)
    pruner: str = setting("median", "stops unpromising trials early", choices=PRUNERS)
    pruner_startup_trials: int = setting(5, "trials run to the end before pruning", ge=0)
    pruner_warmup_epochs: int = setting(2, "epochs of each trial before it can be pruned", ge=0)
    heartbeat_interval: int = setting(60, "seconds; a trial silent for 3x this is failed", ge=1)
    n_workers: int = setting(
        1, "worker processes here; with k GPUs worker i gets GPU i % k", ge=1, le=64
    )
    crop_fraction_range: tuple[float, float] = setting((0.6, 0.9), "low,high", gt=0, le=1)
    image_size_choices: tuple[int, ...] = setting(
        (128, 160, 224), "sizes to try", ge=8, le=MAX_MODEL_SIDE
    )
    dropout_range: tuple[float, float] = setting((0.1, 0.5), "low,high", ge=0, lt=1)
    learning_rate_range: tuple[float, float] = setting(
        (1e-4, 3e-3), "low,high (log scale)", gt=0, le=1
    )
    batch_size_choices: tuple[int, ...] = setting((64, 128), "batch sizes to try", ge=1, le=8192)
    epochs: int = setting(30, "epochs per trial", ge=1, le=100_000)
    register_best: bool = setting(False, "register the best trial's model (champion if better)")
    model_name: str = setting("gz-decals", "registered model name for register_best")

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

    def problems(self) -> Iterator[str]:
        for name in ("crop_fraction_range", "dropout_range", "learning_rate_range"):
            value = getattr(self, name)
            if len(value) != 2 or value[0] > value[1]:
                yield f"{name}={','.join(map(str, value))} must be low,high with low <= high"
        for name in ("image_size_choices", "batch_size_choices"):
            if not getattr(self, name):
                yield f"{name} needs at least one value"
