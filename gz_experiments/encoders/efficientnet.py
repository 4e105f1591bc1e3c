"""EfficientNet-B0 in Keras, layer for layer as timm builds `efficientnet_b0` and
`tf_efficientnet_b0`, for imported weights (Keras' own EfficientNetB0 has other layer names,
a built-in rescaling and Keras' BatchNorm eps, so it cannot take timm's tensors as they are).

What timm does (timm/models/efficientnet.py, _efficientnet_blocks.py, timm 1.0):
- stem: 3x3 stride-2 convolution (no bias), BatchNorm + SiLU;
- seven stages of blocks (kernel, stride, expansion, channels, repeats below): the first a
  depthwise-separable block (depthwise conv, BN + SiLU, squeeze-excite, 1x1 conv, BN), the rest
  inverted residuals (1x1 expansion, BN + SiLU, depthwise conv, BN + SiLU, squeeze-excite, 1x1
  projection, BN); a residual where stride 1 and channels unchanged (drop path off at inference);
- squeeze-excite: global mean -> 1x1 conv to in_channels / 4 (bias) -> SiLU -> 1x1 conv (bias)
  -> sigmoid gate;
- head: 1x1 convolution to 1280, BN + SiLU, global average.
The two variants differ only in the details ported from TensorFlow:
- `efficientnet_b0`: BatchNorm eps 1e-5, symmetric padding (kernel // 2): stride-2 convolutions
  here are explicit ZeroPadding2D + "valid" (Keras' "same" pads stride 2 asymmetrically);
- `tf_efficientnet_b0`: BatchNorm eps 1e-3 and TensorFlow's asymmetric "same" padding, which is
  exactly Keras' "same".
Layers are named after timm's modules (`blocks.1.0.conv_dw`), so `torch_weights` copies by name.
"""

from __future__ import annotations

import re
from functools import partial

import keras

from gz_experiments.encoders.layers import Standardize

# (kernel, stride, expansion, channels, repeats) per stage; stage 0 is depthwise-separable.
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))  # fmt: skip
STEM, HEAD, SE_RATIO = 32, 1280, 0.25
VARIANTS = {"efficientnet_b0": (1e-5, False), "tf_efficientnet_b0": (1e-3, True)}  # eps, TF pad


class Builder:
    """Conv / BN helpers of one variant (its BatchNorm eps and padding)."""

    def __init__(self, eps: float, tf_padding: bool):
        self.eps, self.tf_padding = eps, tf_padding

    def conv(self, x, filters: int | None, kernel: int, stride: int, name: str, bias=False):
        """A convolution (depthwise when filters is None) padded as the variant pads."""
        padding = "same"
        if stride > 1 and not self.tf_padding:
            x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}.pad")(x)
            padding = "valid"
        if filters is None:
            return keras.layers.DepthwiseConv2D(
                kernel, strides=stride, padding=padding, use_bias=False, name=name
            )(x)
        layer = keras.layers.Conv2D(
            filters, kernel, strides=stride, padding=padding, use_bias=bias, name=name
        )
        return layer(x)

    def bn(self, x, name: str, act: bool):
        x = keras.layers.BatchNormalization(epsilon=self.eps, momentum=0.9, name=name)(x)
        return keras.layers.Activation("silu", name=f"{name}.act")(x) if act else x


def squeeze_excite(x, reduced: int, name: str):
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.pool")(x)
    s = keras.layers.Conv2D(reduced, 1, activation="silu", name=f"{name}.conv_reduce")(s)
    s = keras.layers.Conv2D(x.shape[-1], 1, activation="sigmoid", name=f"{name}.conv_expand")(s)
    return keras.layers.Multiply(name=f"{name}.gate")([x, s])


def block(b: Builder, x, kernel: int, stride: int, expansion: int, out: int, name: str):
    """A depthwise-separable (expansion 1) or inverted-residual block."""
    inputs, in_chs = x, x.shape[-1]
    if expansion > 1:
        x = b.conv(x, in_chs * expansion, 1, 1, f"{name}.conv_pw")
        x = b.bn(x, f"{name}.bn1", act=True)
    x = b.conv(x, None, kernel, stride, f"{name}.conv_dw")
    x = b.bn(x, f"{name}.bn{2 if expansion > 1 else 1}", act=True)
    x = squeeze_excite(x, max(1, int(in_chs * SE_RATIO)), f"{name}.se")
    if expansion > 1:
        x = b.conv(x, out, 1, 1, f"{name}.conv_pwl")
        x = b.bn(x, f"{name}.bn3", act=False)
    else:
        x = b.conv(x, out, 1, 1, f"{name}.conv_pw")
        x = b.bn(x, f"{name}.bn2", act=False)
    if stride == 1 and in_chs == out:
        x = keras.layers.Add(name=f"{name}.add")([x, inputs])
    return x


def efficientnet_b0(input_shape: tuple[int, int, int], variant: str) -> keras.Model:
    """[0, 1] images -> global-average-pooled 1280 features."""
    b = Builder(*VARIANTS[variant])
    inputs = keras.Input(input_shape)
    x = Standardize(name="standardize")(inputs)
    x = b.bn(b.conv(x, STEM, 3, 2, "conv_stem"), "bn1", act=True)
    for stage, (kernel, stride, expansion, out, repeats) in enumerate(STAGES):
        for i in range(repeats):
            x = block(b, x, kernel, stride if i == 0 else 1, expansion, out, f"blocks.{stage}.{i}")
    x = b.bn(b.conv(x, HEAD, 1, 1, "conv_head"), "bn2", act=True)
    features = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, features, name="encoder")


def builders() -> dict:
    return {variant: partial(efficientnet_b0, variant=variant) for variant in VARIANTS}


def efficientnet_blocks(encoder: keras.Model) -> dict[str, list[keras.Layer]]:
    """stem (conv_stem, bn1), blocks.0 ... blocks.6, head (conv_head, bn2)."""
    blocks: dict[str, list[keras.Layer]] = {}
    for layer in encoder.layers:
        match = re.match(r"(blocks\.\d+)\.|(conv_stem|bn1)\b|(conv_head|bn2)\b", layer.name)
        if match:
            name = match.group(1) or ("stem" if match.group(2) else "head")
            blocks.setdefault(name, []).append(layer)
    return blocks
