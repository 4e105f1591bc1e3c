"""Training and inference speed of the PyTorch peer, zoobot 2.9.0, on random galaxies.

Runs with the PEER venv's python, never the project's (imports only torch, timm, zoobot and the
stdlib; `benchmarks/peer_env.py` builds that venv and runs this file):

    ~/.cache/gz_experiments/peer-zoobot-venv/bin/python benchmarks/peer_zoobot.py
    ~/.cache/gz_experiments/peer-zoobot-venv/bin/python benchmarks/peer_zoobot.py \\
        --sizes 64,128 --train-steps 4 --infer-batches 4 --bare-timm     # ~1 min on 2 cores

What is timed, per image size, from scratch (no weights are downloaded), greyscale by default:

- **train**: zoobot's own from-scratch model, `zoobot.pytorch.estimators.define_model.ZoobotTree`
  built as `train_default_zoobot_from_scratch` builds it (timm `efficientnet_b0` encoder with
  `in_chans=channels, num_classes=0`; head = `PermaDropout(0.2)` + Linear(1280, 34) + 100*sigmoid+1;
  `test_time_dropout=True`) for the GZ DECaLS DR5 tree (zoobot's own
  `zoobot.shared.schemas.decals_dr5_ortho_schema`: 10 questions, 34 answers). Each step is
  `ZoobotTree.training_step` (zoobot's Dirichlet-multinomial loss,
  `losses.CustomMultiQuestionLoss` + `get_dirichlet_neg_log_prob`, and its per-question metrics),
  backward, gradient-norm clipping at 0.3 (the value zoobot passes to its Lightning Trainer) and
  the AdamW from `ZoobotTree.configure_optimizers` (lr 1e-3, weight decay 0.01). A plain loop
  replaces `lightning.Trainer.fit`, so Lightning's per-step bookkeeping is not counted.
- **infer**: one pass, `eval()` mode under `torch.inference_mode()` (as Lightning's
  `Trainer.predict` runs `predict_step`).
- **infer_mc**: MC dropout as zoobot does it: n full forward passes of the whole model per batch.
  In zoobot 2.9.0 the only test-time randomness is the head's `PermaDropout` (the encoder's
  drop-path follows `eval()`), so each pass repeats the encoder for nothing but the head's dropout.
  images_per_second counts distinct galaxies, so it is about the one-pass rate / n.
- with `--bare-timm`, also a bare `timm.create_model("efficientnet_b0", num_classes=34)` (timm's
  own pooled linear classifier, same parameter count, no sigmoid, no Dirichlet loss, no metrics,
  MSE on random targets, same AdamW, no clipping): train and one-pass infer, for context.

Inputs are random uint8 values scaled to [0, 1] (as zoobot's loaders feed the model) and random
integer vote counts; the warm-up steps (oneDNN primitive creation) are not timed. One JSON object
per line on stdout (framework, what, size, batch, threads, images_per_second, seconds, steps,
n_params, plus channels, cpu_seconds, passes for inference, and versions); progress on stderr.
Timings on a shared 2-core VM vary by up to ~40 %.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.metadata
import json
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from functools import partial

import torch

GRAD_CLIP_NORM = 0.3  # zoobot's L.Trainer(gradient_clip_val=.3) in train_with_pytorch_lightning
# GZD-5 galaxies have ~5 to 40+ votes per question; the loss's cost does not depend on the counts
MAX_VOTES = 40
DISTINCT_BATCHES = 4  # cycled, so no step reuses the very tensor the previous one saw


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,224", help="image sizes, comma-separated")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="intra- and inter-op threads")
    parser.add_argument("--train-steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps/batches first")
    parser.add_argument("--infer-batches", type=int, default=10, help="timed inference batches")
    parser.add_argument("--mc-samples", type=int, default=5, help="forward passes for MC dropout")
    parser.add_argument("--channels", type=int, default=1, help="1 = greyscale, 3 = colour")
    parser.add_argument(
        "--drop-path-rate",
        type=float,
        default=0.2,
        help="timm stochastic depth; zoobot's docstring example and Keras EfficientNetB0's default "
        "(zoobot's own default, timm_kwargs={}, gives 0)",
    )
    parser.add_argument("--bare-timm", action="store_true", help="also time a bare timm model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


def log(message: str) -> None:
    print(f"[peer_zoobot] {message}", file=sys.stderr, flush=True)


# ---- imports (timm needs torchvision) -----------------------------------------------------------


def torchvision_imports() -> str | None:
    """The error of `import torchvision` in a fresh interpreter, or None if it imports.

    Probed in a child process because a failed import leaves half-registered state behind.
    """
    probe = subprocess.run(
        [sys.executable, "-I", "-c", "import torchvision"], capture_output=True, text=True
    )
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {probe.returncode}"


def skip_torchvision_meta_registrations() -> None:
    """Let torchvision's pure-Python parts import without its C++ operators.

    timm imports torchvision at import time (transforms, datasets, ops.misc.FrozenBatchNorm2d),
    but nothing timed here runs a torchvision operator. The only torchvision wheels beside torch
    2.13.0+cpu are CUDA builds (0.28.0+cu130): their _C.so needs libtorch_cuda.so, does not load,
    and then `torchvision._meta_registrations` dies registering fake kernels for the missing
    operators ("operator torchvision::nms does not exist"). Those fake kernels only serve
    torch.compile/export tracing of those operators, so an empty module stands in for them.
    """
    name = "torchvision._meta_registrations"
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    sys.modules[name] = module


def import_peer() -> dict:
    """Import timm and zoobot (after the thread settings, which must come first)."""
    error = torchvision_imports()
    if error is not None:
        log(f"torchvision does not import ({error}); importing it without its C++ operators")
        skip_torchvision_meta_registrations()
    import torchvision

    torchvision_state = torchvision.__version__ + ("" if error is None else " (no C++ ops)")
    import timm
    from zoobot.pytorch.estimators import define_model
    from zoobot.shared import schemas

    versions = {
        "torch": torch.__version__,
        "timm": timm.__version__,
        "zoobot": importlib.metadata.version("zoobot"),  # zoobot has no __version__
        "torchvision": torchvision_state,
    }
    return {
        "timm": timm,
        "define_model": define_model,
        "schema": schemas.decals_dr5_ortho_schema,
        "versions": versions,
    }


# ---- models --------------------------------------------------------------------------------------


def build_zoobot(peer: dict, channels: int, drop_path_rate: float):
    """ZoobotTree exactly as train_default_zoobot_from_scratch constructs it."""
    schema = peer["schema"]
    return peer["define_model"].ZoobotTree(
        output_dim=len(schema.label_cols),
        question_answer_pairs=schema.question_answer_pairs,
        dependencies=schema.dependencies,
        architecture_name="efficientnet_b0",
        channels=channels,
        test_time_dropout=True,
        dropout_rate=0.2,
        learning_rate=1e-3,
        timm_kwargs={"drop_path_rate": drop_path_rate},
        betas=(0.9, 0.999),
        weight_decay=0.01,
    )


def build_bare(peer: dict, channels: int, drop_path_rate: float, n_outputs: int):
    return peer["timm"].create_model(
        "efficientnet_b0",
        pretrained=False,
        in_chans=channels,
        num_classes=n_outputs,
        drop_path_rate=drop_path_rate,
    )


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- data ----------------------------------------------------------------------------------------


def random_images(gen: torch.Generator, batch: int, channels: int, size: int) -> torch.Tensor:
    pixels = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8, generator=gen)
    return pixels.float() / 255.0


def random_zoobot_batches(gen, batch, channels, size, label_cols) -> list[dict]:
    """Dicts shaped like galaxy-datasets' CatalogDataModule batches: 'image' + one float vote
    count per label column (zoobot's loss casts them to int)."""
    batches = []
    for _ in range(DISTINCT_BATCHES):
        votes = torch.randint(0, MAX_VOTES + 1, (batch, len(label_cols)), generator=gen)
        item = {col: votes[:, i].float() for i, col in enumerate(label_cols)}
        item["image"] = random_images(gen, batch, channels, size)
        batches.append(item)
    return batches


def cycle(items: list) -> Iterator:
    while True:
        yield from items


# ---- timing --------------------------------------------------------------------------------------


def timed(step: Callable[[], None], warmup: int, steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of `steps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return time.perf_counter() - wall, time.process_time() - cpu


def zoobot_train_step(model, optimizer, batches: Iterator) -> Callable[[], None]:
    counter = iter(range(sys.maxsize))

    def step() -> None:
        loss = model.training_step(next(batches), next(counter))["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP_NORM)
        optimizer.step()

    return step


def bare_train_step(model, optimizer, batches: Iterator, targets: torch.Tensor):
    def step() -> None:
        loss = torch.nn.functional.mse_loss(model(next(batches)["image"]), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def infer_step(forward: Callable, batches: Iterator, passes: int) -> Callable[[], None]:
    def step() -> None:
        images = next(batches)["image"]
        with torch.inference_mode():
            for _ in range(passes):
                forward(images)

    return step


def record(args, framework, what, size, n_params_, wall, cpu, steps, **extra) -> dict:
    images = args.batch * steps
    return {
        "framework": framework,
        "what": what,
        "size": size,
        "batch": args.batch,
        "threads": args.threads,
        "images_per_second": round(images / wall, 3),
        "seconds": round(wall, 3),
        "steps": steps,
        "n_params": n_params_,
        "channels": args.channels,
        "cpu_seconds": round(cpu, 3),
        **extra,
        "versions": args.versions,
    }


def measure_zoobot(args, peer, size: int, gen: torch.Generator) -> Iterator[dict]:
    model = build_zoobot(peer, args.channels, args.drop_path_rate)
    batches = cycle(
        random_zoobot_batches(gen, args.batch, args.channels, size, model.schema.label_cols)
    )
    params = n_params(model)
    model.train()
    optimizer = model.configure_optimizers()
    step = zoobot_train_step(model, optimizer, batches)
    wall, cpu = timed(step, args.warmup, args.train_steps)
    yield record(args, "zoobot", "train", size, params, wall, cpu, args.train_steps)

    model.eval()
    forward = partial(model.predict_step, batch_idx=0)  # zoobot's own predict path
    for what, passes in (("infer", 1), ("infer_mc", args.mc_samples)):
        wall, cpu = timed(infer_step(forward, batches, passes), args.warmup, args.infer_batches)
        yield record(
            args, "zoobot", what, size, params, wall, cpu, args.infer_batches, passes=passes
        )


def measure_bare(args, peer, size: int, gen: torch.Generator, n_outputs: int) -> Iterator[dict]:
    model = build_bare(peer, args.channels, args.drop_path_rate, n_outputs)
    batches = cycle(
        [
            {"image": random_images(gen, args.batch, args.channels, size)}
            for _ in range(DISTINCT_BATCHES)
        ]
    )
    targets = torch.rand(args.batch, n_outputs, generator=gen)
    params = n_params(model)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01
    )
    step = bare_train_step(model, optimizer, batches, targets)
    wall, cpu = timed(step, args.warmup, args.train_steps)
    yield record(args, "timm", "train", size, params, wall, cpu, args.train_steps)

    model.eval()
    wall, cpu = timed(infer_step(model, batches, 1), args.warmup, args.infer_batches)
    yield record(args, "timm", "infer", size, params, wall, cpu, args.infer_batches, passes=1)


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)
    log(f"{row['framework']} {row['what']} {row['size']}px: {row['images_per_second']} img/s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Both must be set before any parallel work starts; set_num_interop_threads raises afterwards.
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(args.seed)
    peer = import_peer()
    args.versions = peer["versions"]
    log(f"versions: {args.versions}")
    n_outputs = len(peer["schema"].label_cols)
    gen = torch.Generator().manual_seed(args.seed)
    for size in args.sizes:
        for row in measure_zoobot(args, peer, size, gen):
            emit(row)
        if args.bare_timm:
            for row in measure_bare(args, peer, size, gen, n_outputs):
                emit(row)


if __name__ == "__main__":
    main()
