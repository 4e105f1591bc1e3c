"""ConvNeXt (Liu et al. 2022) in Keras, layer for layer as timm builds it, for imported weights.

What timm's `convnext_*` does, and this copies (timm/models/convnext.py, timm 1.0):
- stem: a 4x4 stride-4 convolution, then LayerNorm (eps 1e-6);
- four stages; stages 1-3 start by downsampling: LayerNorm, then a 2x2 stride-2 convolution;
- a block: 7x7 depthwise convolution -> LayerNorm (eps 1e-6, over channels) -> 4x wide MLP with
  exact (erf) GELU -> layer scale gamma -> + the block's input (drop path is off at inference);
  convnext_nano computes the MLP as 1x1 convolutions (`conv_mlp`), the same arithmetic;
- pooled features: global average, then the head's LayerNorm (timm's `num_classes=0` features).

Layers are named after timm's modules (`stages.1.downsample.1`), so `torch_weights` copies a
checkpoint by name. Images enter in [0, 1] and pass `Standardize` (identity unless the import set
a mean and std).
"""

from __future__ import annotations

import re
from functools import partial

import keras

from gz_experiments.encoders.layers import LayerScale, Standardize

LAYER_NORM_EPS = 1e-6  # timm's LayerNorm / LayerNorm2d default, used by every ConvNeXt
# timm name -> (blocks per stage, channels per stage)
SIZES = {
    "convnext_nano": ((2, 2, 8, 2), (80, 160, 320, 640)),
    "convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext_base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
}


def layer_norm(name: str) -> keras.layers.Layer:
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name=name)


def block(x, dim: int, name: str):
    """One ConvNeXt block: depthwise conv, norm, MLP, layer scale, residual."""
    y = keras.layers.DepthwiseConv2D(7, padding="same", name=f"{name}.conv_dw")(x)
    y = layer_norm(f"{name}.norm")(y)
    y = keras.layers.Dense(4 * dim, name=f"{name}.mlp.fc1")(y)
    # Keras' "gelu" is the exact (erf) one, as timm's; the tanh approximation differs by ~1e-3.
    y = keras.layers.Activation("gelu", name=f"{name}.mlp.act")(y)
    y = keras.layers.Dense(dim, name=f"{name}.mlp.fc2")(y)
    y = LayerScale(name=f"{name}.gamma")(y)
    return keras.layers.Add()([x, y])


def convnext(input_shape: tuple[int, int, int], size: str) -> keras.Model:
    """A `size` ConvNeXt (a key of SIZES): [0, 1] images -> pooled, normalised features."""
    depths, dims = SIZES[size]
    inputs = keras.Input(input_shape)
    x = Standardize(name="standardize")(inputs)
    x = keras.layers.Conv2D(dims[0], 4, strides=4, name="stem.0")(x)
    x = layer_norm("stem.1")(x)
    for stage, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
        if stage > 0:
            x = layer_norm(f"stages.{stage}.downsample.0")(x)
            x = keras.layers.Conv2D(dim, 2, strides=2, name=f"stages.{stage}.downsample.1")(x)
        for i in range(depth):
            x = block(x, dim, f"stages.{stage}.blocks.{i}")
    x = keras.layers.GlobalAveragePooling2D(name="head.global_pool")(x)
    features = layer_norm("head.norm")(x)
    return keras.Model(inputs, features, name="encoder")


def builders() -> dict:
    """Architecture name -> `(input_shape) -> keras.Model`, one per size."""
    return {size: partial(convnext, size=size) for size in SIZES}


def convnext_blocks(encoder: keras.Model) -> dict[str, list[keras.Layer]]:
    """stem, stages.0 ... stages.3, head: the units finetune's n_blocks counts."""
    blocks: dict[str, list[keras.Layer]] = {}
    for layer in encoder.layers:
        match = re.match(r"(stem|stages\.\d+|head)\.", layer.name)
        if match:
            blocks.setdefault(match.group(1), []).append(layer)
    return blocks
