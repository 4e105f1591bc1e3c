"""Configs of active learning: the `acquire` step, and the closed-loop benchmark's settings.

The acquisition scores themselves live in gz_experiments/acquisition (BALD, predictive entropy,
random); `n_volunteers_setting` is shared with the predict step's acquisition columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from gz_experiments.config.base import StepConfig, setting
from gz_experiments.config.inference import ModelInputFields, PredictConfig, SamplingFields

# The same as gz_experiments.acquisition.KINDS (a test checks), repeated so that reading a config
# does not import SciPy.
ACQUISITIONS = ("bald", "entropy", "random")


def same_setting(cls: type, name: str) -> Any:
    """A field declared like `cls`'s field `name` (default, help, range): one definition."""
    original = next(f for f in fields(cls) if f.name == name)
    return field(default=original.default, metadata=original.metadata)


@dataclass(frozen=True)
class AcquireConfig(ModelInputFields, SamplingFields, StepConfig):
    """Rank unlabelled galaxies by what volunteers' votes would teach the model; keep the top k."""

    STEP: ClassVar[str] = "acquire"
    k: int = setting(100, "galaxies to choose (all of them if fewer)", ge=1, le=10_000_000)
    acquisition: str = setting(
        "bald", "bald, entropy (predictive), or random (the baseline)", choices=ACQUISITIONS
    )
    questions: tuple[str, ...] = setting(
        (), "questions to score, comma-separated; empty = the whole tree", default_factory=tuple
    )
    n_volunteers: int = same_setting(PredictConfig, "n_volunteers")
    output: str = setting("", "top-k table (.parquet or .csv); empty = only the run's artifact")
    grid_size: int = setting(16, "top galaxies shown in the PNG grid (0 = no grid)", ge=0, le=100)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16},
        "cpu": {"batch_size": 64},
        "paper": {},
    }

    def problems(self) -> Iterator[str]:
        if len(set(self.questions)) != len(self.questions):
            yield f"questions={','.join(self.questions)} names a question twice"


@dataclass(frozen=True)
class ActiveLearningConfig(StepConfig):
    """The closed loop of benchmarks/bench_active_learning.py: simulated volunteers answer the
    galaxies a strategy acquires, round after round. Not an MLflow Projects entry point.

    The defaults are the honest run (~40 min on 2 cores); `debug` is a smoke test of seconds.
    """

    STEP: ClassVar[str] = "active_learning"
    n_pool: int = setting(4000, "simulated unlabelled galaxies to acquire from", ge=2)
    n_val: int = setting(
        500, "fixed labelled validation set (early stopping), every strategy", ge=1
    )
    n_test: int = setting(1000, "held-out galaxies the curves are measured on", ge=1)
    data_seed: int = setting(0, "seed of the simulated galaxies and of the val/test split", ge=0)
    img_size: int = setting(40, "simulated image side in pixels", ge=8, le=512)
    crop_fraction: float = setting(0.8, "crop side / image side, as in training", gt=0, le=1)
    image_size: int = setting(32, "side the small_cnn encoder sees", ge=8, le=512)
    initial: int = setting(200, "labelled galaxies before the first round (random)", ge=1)
    k: int = setting(200, "galaxies acquired (and labelled) per round", ge=1)
    rounds: int = setting(8, "acquisition rounds after the initial training", ge=1, le=1000)
    strategies: tuple[str, ...] = setting(
        ("bald", "random"), "acquisitions to compare", choices=ACQUISITIONS
    )
    seeds: tuple[int, ...] = setting((0, 1, 2), "one loop per seed and strategy", ge=0)
    warm_start: bool = setting(
        False, "continue from the previous round's weights instead of retraining from scratch"
    )
    epochs: int = setting(60, "epochs per round (upper limit: early stopping)", ge=1)
    patience: int = setting(8, "epochs without a better validation loss before stopping", ge=1)
    batch_size: int = setting(32, "galaxies per training step", ge=1)
    learning_rate: float = setting(1e-3, "Adam learning rate", gt=0, le=1)
    dropout: float = setting(0.2, "dropout before the head: the MC samples BALD uses", gt=0, lt=1)
    n_samples: int = setting(5, "MC-dropout samples per galaxy for the scores", ge=2, le=100)
    n_volunteers: int = same_setting(PredictConfig, "n_volunteers")
    questions: tuple[str, ...] = setting(
        (), "questions bald/entropy score; empty = the whole tree", default_factory=tuple
    )
    votes: int = setting(40, "simulated volunteers per galaxy (GZ DECaLS retired at ~40)", ge=1)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {
            "n_pool": 64,
            "n_val": 24,
            "n_test": 24,
            "img_size": 20,
            "image_size": 16,
            "initial": 24,
            "k": 16,
            "rounds": 1,
            "seeds": (0,),
            "epochs": 2,
            "batch_size": 8,
        },
        "cpu": {},
        "paper": {},
    }

    @property
    def n_labelled_final(self) -> int:
        return self.initial + self.k * self.rounds

    def problems(self) -> Iterator[str]:
        if self.n_labelled_final > self.n_pool:
            yield (
                f"initial + k * rounds = {self.n_labelled_final} galaxies would be labelled but "
                f"the pool has only n_pool={self.n_pool}"
            )
        if self.image_size > self.img_size:
            yield f"image_size={self.image_size} is larger than img_size={self.img_size}"
        for name in ("strategies", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                yield f"{name} needs at least one value, each once"
