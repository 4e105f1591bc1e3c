"""Finding and reading an encoder checkpoint on disk: a file, a folder, or a Hugging Face cache.

    found = locate("~/.cache/huggingface/hub/models--mwalmsley--zoobot-encoder-convnext_nano")
    state = read_state(found.weights)     # {timm key: numpy array}; found.config: config.json

A Hugging Face cache folder (`models--<org>--<name>`, what `huggingface-cli download` fills) holds
`snapshots/<commit>/` folders; the one `refs/main` names is used, or the only one. In a folder,
`model.safetensors` is preferred (read with safetensors' numpy API: no PyTorch needed), then
PyTorch pickles (`pytorch_model.bin`, `*.pth`, `*.pt`, `*.ckpt`: these need torch installed).
Nothing is ever downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gz_experiments.errors import UserError

SAFETENSORS = (".safetensors",)
TORCH_PICKLES = (".bin", ".pth", ".pt", ".ckpt")
KERAS_FILES = (".weights.h5", ".keras", ".h5")
# Lightning checkpoints (zoobot's .ckpt) keep the timm encoder under one of these prefixes.
ENCODER_PREFIXES = ("encoder.", "model.")


@dataclass(frozen=True)
class Checkpoint:
    weights: Path  # the file holding the tensors
    config: dict[str, Any] = field(default_factory=dict)  # timm's config.json beside it, if any

    @property
    def kind(self) -> str:
        """ "keras" for a Keras weights file, "torch" for a timm state dict."""
        return "keras" if self.weights.name.endswith(KERAS_FILES) else "torch"


def locate(source: str | Path) -> Checkpoint:
    """The weights file (and config.json) that `source` names: a file or a folder."""
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such file or folder (nothing is downloaded: see the README)")
    if path.is_dir():
        path = weights_in(snapshot(path))
    if not path.name.endswith(SAFETENSORS + TORCH_PICKLES + KERAS_FILES):
        raise UserError(
            f"{path}: not a checkpoint this step reads; give a .safetensors, .bin, .pth, .pt, "
            f".ckpt, .weights.h5, .keras or .h5 file, or a folder holding one"
        )
    config_file = path.with_name("config.json")
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return Checkpoint(path, config)


def snapshot(folder: Path) -> Path:
    """A Hugging Face cache folder -> its snapshot folder; any other folder unchanged."""
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return folder
    ref = folder / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    found = sorted(p for p in snapshots.iterdir() if p.is_dir())
    if len(found) != 1:
        raise UserError(
            f"{snapshots}: {len(found)} snapshots and no refs/main; give one snapshot folder "
            f"({', '.join(p.name for p in found[:3]) or 'none'})"
        )
    return found[0]


def weights_in(folder: Path) -> Path:
    """The checkpoint file of a folder: safetensors first, then PyTorch, then Keras files."""
    for suffixes in (SAFETENSORS, TORCH_PICKLES, KERAS_FILES):
        found = sorted(p for p in folder.iterdir() if p.name.endswith(suffixes))
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise UserError(f"{folder}: several checkpoints ({names}); give the file itself")
        if found:
            return found[0]
    raise UserError(
        f"{folder}: no model.safetensors, .bin, .pth, .pt, .ckpt, .weights.h5 or .keras file; "
        f"download the model first (see the README: import_encoder)"
    )


def read_state(path: Path) -> dict[str, np.ndarray]:
    """{key: numpy array} of a safetensors file or a PyTorch pickle (a Lightning checkpoint's
    encoder too)."""
    if path.name.endswith(SAFETENSORS):
        from safetensors.numpy import load_file

        try:
            return load_file(str(path))
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: cannot read it as safetensors ({exc})") from None
    return encoder_part(read_torch(path), path)


def read_torch(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise UserError(
            f"{path}: reading a PyTorch checkpoint needs torch (pip install torch); or give the "
            f"model.safetensors of the same model, which needs no torch"
        ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe pickle
        raise UserError(f"{path}: cannot read it as a PyTorch checkpoint ({exc})") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds no state dict (a whole pickled model is not read)")
    return {k: v.float().numpy() for k, v in state.items() if isinstance(v, torch.Tensor)}


def encoder_part(state: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """A Lightning checkpoint's encoder tensors with their prefix removed; a plain timm state
    dict unchanged."""
    for prefix in ENCODER_PREFIXES:
        inner = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if inner and not any(k.startswith(("stem.", "conv1.")) for k in state):
            return inner
    if not state:
        raise UserError(f"{path}: the checkpoint holds no tensors")
    return state
