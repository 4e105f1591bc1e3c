"""timm models for the import tests: random weights, saved as the Hugging Face hub stores them.

torch and timm are dev dependencies (pip install -e .[dev]); tests skip without them. Every timm
release (0.9 to 1.0.31) imports torchvision at `import timm`, for classes the encoders here never
use (FrozenBatchNorm2d, data transforms), and PyPI's torchvision is built for CUDA torch: beside
the CPU torch 2.13 it fails on import ("operator torchvision::nms does not exist"). So when
torchvision cannot be imported, `import_timm` puts an inert stand-in package in its place first.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

VARIANCE_FLOOR = 0.1


class _Inert(type):
    """A class whose every attribute is another inert class: enough for module-level code that
    names torchvision classes (subclassing, dict keys) without calling them."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert(name, (), {})


class _InertModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert(name, (), {})


class _InertFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] != "torchvision":
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _InertModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def import_timm():
    """(torch, timm), or skip the test with the reason."""
    torch = pytest.importorskip("torch", reason="torch is a dev dependency: pip install -e .[dev]")
    try:
        import torchvision  # noqa: F401
    except Exception:  # missing, or PyPI's CUDA build beside CPU torch
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.meta_path.insert(0, _InertFinder())
    timm = pytest.importorskip("timm", reason="timm is a dev dependency: pip install -e .[dev]")
    return torch, timm


def random_timm_model(name: str, seed: int = 0, in_chans: int = 3):
    """A timm encoder (no classifier) with random biases, norm scales and BatchNorm statistics
    besides timm's random kernels: an untrained model's zero or constant ones (layer scale 1e-6,
    a bottleneck's last BN gamma 0, biases 0) would hide mapping errors."""
    torch, timm = import_timm()
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or tensor.ndim > 1:
                continue  # timm's own initialisation of the convolutions and linears
            noise = torch.randn(tensor.shape, generator=generator)
            if key.endswith("bn3.weight"):  # a residual branch's scale: small, as trained
                tensor.copy_(0.1 * (1 + 0.2 * noise))
            elif key.endswith(("gamma", "norm.weight", "bn1.weight", "bn2.weight")):
                tensor.copy_(1 + 0.2 * noise)
            else:
                tensor.add_(0.05 * noise)
    calibrate_batchnorm(torch, model, in_chans, generator)
    return model.eval()


def calibrate_batchnorm(torch, model, in_chans: int, generator) -> None:
    """BatchNorm statistics of random images, as training would leave them: random statistics
    would let activations grow to ~1e6, where float32 rounding alone exceeds the tolerance. A
    variance floor keeps channels that are near-constant on so few images from amplifying
    rounding ~300x (1 / sqrt(eps)), as PyTorch's own float32 differs from float64 then."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.rand((8, in_chans, 64, 64), generator=generator))
        for norm in norms:
            norm.running_var.clamp_(min=VARIANCE_FLOOR)


def save_like_hub(model, name: str, root: Path) -> Path:
    """Write `model` as `huggingface-cli download` leaves it: models--<org>--<name>/ with
    refs/main and snapshots/<commit>/{model.safetensors, config.json}. Returns the repo folder."""
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--test--zoobot-encoder-{name}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(snapshot / "model.safetensors"), metadata={"format": "pt"})
    config = {"architecture": name, "num_classes": 0, "num_features": model.num_features,
              "pretrained_cfg": {"input_size": [model.in_chans if hasattr(model, "in_chans")
                                                else 3, 224, 224]}}  # fmt: skip
    (snapshot / "config.json").write_text(json.dumps(config))
    return repo


def torch_features(model, images: np.ndarray) -> np.ndarray:
    """Pooled features of NHWC float32 images, as timm computes them (NCHW inside)."""
    torch, _ = import_timm()
    with torch.no_grad():
        return model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
