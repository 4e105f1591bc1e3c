"""Config of the import_encoder step: a published encoder from a local file, as a galaxy model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from gz_experiments.config.base import StepConfig, setting


@dataclass(frozen=True)
class ImportEncoderConfig(StepConfig):
    """A timm/zoobot checkpoint or a Keras weights file -> encoder + untrained head, registered."""

    STEP: ClassVar[str] = "import_encoder"
    source: str = setting(
        "",
        "checkpoint file (.safetensors .bin .pth .ckpt .weights.h5 .keras) or a folder holding "
        "one: a Hugging Face cache folder models--<org>--<name>, or one of its snapshots",
        path=True,
    )
    architecture: str = setting(
        "", "encoder architecture; empty = the 'architecture' of config.json beside the weights"
    )
    img_size: int = setting(300, "stored image side of the shards it will read", ge=8, le=4096)
    greyscale: bool = setting(
        False, "read greyscale images: a colour stem is summed over R, G, B (same features)"
    )
    crop_fraction: float = setting(0.75, "crop side / stored side, as train's", gt=0, le=1)
    image_size: int = setting(224, "side the encoder sees after crop and resize", ge=32, le=1024)
    mean: tuple[float, ...] = setting((), "per-channel mean subtracted first; empty = none")
    std: tuple[float, ...] = setting((), "per-channel std divided by; empty = none", gt=0)
    dropout: float = setting(0.2, "dropout before the head", ge=0, lt=1)
    schema: str = setting("gzd5", "tree of the (untrained) head; finetune replaces it")
    name: str = setting("", "register the model under this name; empty = only the run's model")
    alias: str = setting("", "alias set on the registered version (needs name)")
    seed: int = setting(0, "seed of the head's initialisation", ge=0)

    # img_size as shard's presets store images; the smallest image_size the encoders take is 32.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"img_size": 32, "image_size": 32, "crop_fraction": 1.0},
        "cpu": {"img_size": 64, "image_size": 48},
        "real": {"img_size": 128, "image_size": 64, "crop_fraction": 0.65},
        "paper": {},
    }

    def problems(self) -> Iterator[str]:
        if len(self.mean) != len(self.std):
            yield f"mean has {len(self.mean)} values but std {len(self.std)}"
        if self.mean and len(self.mean) != (1 if self.greyscale else 3):
            yield f"mean/std need {1 if self.greyscale else 3} value(s), one per channel read"
        if self.alias and not self.name:
            yield "alias needs name (the registered model to set it on)"
