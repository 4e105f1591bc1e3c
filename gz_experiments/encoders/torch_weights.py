"""A PyTorch state dict (numpy arrays by timm key) -> the weights of a Keras twin, by layer name.

Each Keras layer with weights is named after the timm module it mirrors; its weights are that
module's tensors, transposed from PyTorch's layouts:
- Conv2D: (out, in, kh, kw) -> (kh, kw, in, out); DepthwiseConv2D: (C, 1, kh, kw) -> (kh, kw, C, 1);
- Dense: (out, in) or a 1x1 convolution's (out, in, 1, 1) -> (in, out);
- BatchNormalization: weight, bias, running_mean, running_var (num_batches_tracked is dropped);
- LayerNormalization: weight, bias; LayerScale: the module's own `gamma` parameter.
Every tensor must find its layer and every layer its tensors, else the import stops and says which:
a checkpoint of another architecture or size never half-loads.
"""

from __future__ import annotations

import keras
import numpy as np

from gz_experiments.encoders.layers import LayerScale, Standardize
from gz_experiments.errors import UserError

# Tensors an encoder does not use: the classifier of a checkpoint saved with one, BN counters.
IGNORED_SUFFIXES = (".num_batches_tracked",)
CLASSIFIERS = ("head.fc.", "fc.")


def tensor_keys(layer: keras.Layer) -> list[str]:
    """The state-dict keys of `layer`'s weights, in Keras' order ([] for a layer without)."""
    name = layer.name
    if isinstance(layer, LayerScale):
        return [name]
    if isinstance(layer, keras.layers.DepthwiseConv2D | keras.layers.Conv2D | keras.layers.Dense):
        return [f"{name}.weight"] + ([f"{name}.bias"] if layer.use_bias else [])
    if isinstance(layer, keras.layers.BatchNormalization):
        return [f"{name}.{key}" for key in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, keras.layers.LayerNormalization):
        return [f"{name}.weight", f"{name}.bias"]
    if layer.weights and not isinstance(layer, Standardize):
        raise UserError(f"layer {name} ({type(layer).__name__}) has no PyTorch counterpart")
    return []


def to_keras_layout(layer: keras.Layer, weight: np.ndarray) -> np.ndarray:
    """A layer's main PyTorch weight in Keras' layout (biases and norms need no change)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return weight.transpose(2, 3, 0, 1)
    if isinstance(layer, keras.layers.Conv2D):
        return weight.transpose(2, 3, 1, 0)
    if isinstance(layer, keras.layers.Dense):
        return weight.reshape(weight.shape[0], -1).T
    return weight


def copy_state(encoder: keras.Model, state: dict[str, np.ndarray], source: str) -> int:
    """Set every weighted layer of `encoder` from `state`; returns the number of tensors used."""
    needed = {layer.name: tensor_keys(layer) for layer in encoder.layers}
    missing = sorted(key for keys in needed.values() for key in keys if key not in state)
    if missing:
        raise UserError(
            f"{source}: {len(missing)} tensor(s) this architecture needs are missing (e.g. "
            f"{', '.join(missing[:3])}): is it really a checkpoint of this architecture and size?"
        )
    unused = sorted(
        key
        for key in set(state).difference(*needed.values())
        if not key.endswith(IGNORED_SUFFIXES) and not key.startswith(CLASSIFIERS)
    )
    if unused:
        raise UserError(
            f"{source}: {len(unused)} tensor(s) this architecture has no place for (e.g. "
            f"{', '.join(unused[:3])}): is it really a checkpoint of this architecture and size?"
        )
    for layer in encoder.layers:
        if not needed[layer.name]:
            continue
        weights = [np.asarray(state[key], np.float32) for key in needed[layer.name]]
        weights[0] = to_keras_layout(layer, weights[0])
        try:
            layer.set_weights(weights)
        except ValueError as exc:
            raise UserError(f"{source}: layer {layer.name} does not fit: {exc}") from None
    return sum(len(keys) for keys in needed.values())
