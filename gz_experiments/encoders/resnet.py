"""ResNet-50 in Keras, layer for layer as timm's `resnet50` builds it, for imported weights.

timm's ResNet-50 (timm/models/resnet.py) is the "v1.5" ResNet, which Keras' own ResNet50 is not:
- the stride of a downsampling bottleneck sits on its 3x3 convolution (Keras': the first 1x1);
- every convolution pads symmetrically (7x7 stem: 3 pixels, 3x3: 1), where Keras' "same" pads a
  stride-2 convolution of an even image only at the bottom/right: so stride-2 convolutions here
  are explicit ZeroPadding2D + "valid";
- BatchNorm eps 1e-5 (PyTorch's default; Keras' is 1e-3), momentum 0.1 in PyTorch = 0.9 here;
- the stem's 3x3 stride-2 max-pool pads 1 pixel; after a ReLU, zeros pad the same as -inf.
Pooled features: the global average of the last stage (2048 channels).

Layers are named after timm's modules (`layer2.0.downsample.0`), so `torch_weights` copies a
checkpoint by name. Images enter in [0, 1] and pass `Standardize`.
"""

from __future__ import annotations

import re

import keras

from gz_experiments.encoders.layers import Standardize

BN_EPS, BN_MOMENTUM = 1e-5, 0.9
STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))  # (bottlenecks, width); output = 4 x width
EXPANSION = 4


def conv_bn(x, filters: int, kernel: int, stride: int, name: str, bn_name: str, relu: bool):
    if kernel > 1:  # symmetric padding, as PyTorch's padding=kernel // 2
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}.pad")(x)
    x = keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, momentum=BN_MOMENTUM, name=bn_name)(x)
    return keras.layers.ReLU(name=f"{bn_name}.act")(x) if relu else x


def bottleneck(x, width: int, stride: int, name: str):
    shortcut = x
    if stride != 1 or x.shape[-1] != width * EXPANSION:
        shortcut = conv_bn(x, width * EXPANSION, 1, stride, f"{name}.downsample.0",
                           f"{name}.downsample.1", relu=False)  # fmt: skip
    y = conv_bn(x, width, 1, 1, f"{name}.conv1", f"{name}.bn1", relu=True)
    y = conv_bn(y, width, 3, stride, f"{name}.conv2", f"{name}.bn2", relu=True)
    y = conv_bn(y, width * EXPANSION, 1, 1, f"{name}.conv3", f"{name}.bn3", relu=False)
    return keras.layers.ReLU(name=f"{name}.act3")(keras.layers.Add()([y, shortcut]))


def resnet50(input_shape: tuple[int, int, int]) -> keras.Model:
    """[0, 1] images -> global-average-pooled 2048 features."""
    inputs = keras.Input(input_shape)
    x = Standardize(name="standardize")(inputs)
    x = conv_bn(x, 64, 7, 2, "conv1", "bn1", relu=True)
    x = keras.layers.ZeroPadding2D(1, name="maxpool.pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for stage, (depth, width) in enumerate(STAGES):
        for i in range(depth):
            stride = 2 if stage > 0 and i == 0 else 1
            x = bottleneck(x, width, stride, f"layer{stage + 1}.{i}")
    features = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, features, name="encoder")


def resnet_blocks(encoder: keras.Model) -> dict[str, list[keras.Layer]]:
    """stem (conv1, bn1), layer1 ... layer4: the units finetune's n_blocks counts."""
    blocks: dict[str, list[keras.Layer]] = {}
    for layer in encoder.layers:
        match = re.match(r"(layer\d)\.|(conv1|bn1)\b", layer.name)
        if match:
            blocks.setdefault(match.group(1) or "stem", []).append(layer)
    return blocks
