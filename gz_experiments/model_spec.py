"""`ModelSpec`: what a trained model takes and answers, stored with every saved model.

No TensorFlow here: readers of shards and catalogs check a model against their data without
loading Keras. The two image sizes have one name each, everywhere:

- `img_size`: the side of the *stored* images (shards, simulated PNGs) the model is fed;
- `image_size`: the side the encoder sees, after the crop of `crop_fraction * img_size` and
  the resize.

`fits` is how FITS flux became pixels in the training shards (copied from their manifest), so
prediction and serving stretch a FITS exactly as training did. It is None for a model trained on
shards without FITS images, and for specs written before FITS support: such a model reads
PNG/JPEG only and refuses a FITS with a reason, rather than guessing a stretch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from gz_experiments.errors import UserError
from gz_experiments.images.fits.stretch import FitsSettings
from gz_experiments.schema import Schema

# TrainConfig fields that define the network (the rest of a spec comes from the shards).
MODEL_FIELDS = ("architecture", "crop_fraction", "image_size", "dropout")
# Names used by specs written before the sizes got one name each.
RENAMED = {"input_size": "img_size"}
# Fields that older specs may lack, with the value they mean there.
OPTIONAL = {"fits": None}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and to feed it the same pixels as in training."""

    architecture: str
    img_size: int  # stored side the model takes
    channels: int  # 1 = greyscale, 3 = colour
    crop_fraction: float  # crop side = round(crop_fraction * img_size), train and inference
    image_size: int  # side after crop + resize: what the encoder sees
    dropout: float
    schema: Schema
    fits: FitsSettings | None = None  # FITS flux -> pixels as in training; None = PNG/JPEG only

    @property
    def greyscale(self) -> bool:
        return self.channels == 1

    @property
    def label_cols(self) -> list[str]:
        return self.schema.label_cols

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["schema"] = self.schema.to_dict()
        out["fits"] = self.fits.to_dict() if self.fits is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = {**OPTIONAL, **{RENAMED.get(k, k): v for k, v in data.items()}}
        known = {f.name for f in fields(cls)}
        missing = sorted(known - set(data))
        if missing:
            raise UserError(f"model spec is missing {missing}; was it written by gz_experiments?")
        values = {k: data[k] for k in known}
        schema = values["schema"]
        if not isinstance(schema, Schema):
            values["schema"] = Schema.from_dict(schema, source="model spec (schema)")
        if isinstance(values["fits"], dict):
            values["fits"] = FitsSettings.from_dict(values["fits"])
        return cls(**values)
