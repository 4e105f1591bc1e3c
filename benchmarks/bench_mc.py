"""Where MC-dropout prediction time goes: the head trick's speed-up and what bounds it.

Exact command (from the repo root, venv active; ~3 min on 2 cores):

    python -m benchmarks.bench_mc
    python -m benchmarks.bench_mc --sizes 64 --batches 3      # smoke, ~40 s

Untrained EfficientNetB0 (speed does not depend on the weights), greyscale, batch 32 (--batch;
predict's default is 128), stored at size / 0.75 px and centre-cropped to `size` by the model.
The parts of `Sampler`'s head mode are
timed on their own, batch by batch in turns with the whole samplers (so load drift hits all):
`augment` (crop + resize), `features` (augment + encoder, one compiled call), `masks` (the
per-galaxy dropout masks, NumPy), `head` (the n masked dense heads, one compiled call); and the
whole `head` and `full` samplers at n=5, and `one pass` (n=1). Medians over the batches.

The head trick's speed-up is full / head. With E = features, M = masks and H = the n heads,
full / (E + M + H) is what it would reach with no cost besides its parts, and it stays below n
as far as M + H add to E and as far as full mode's n passes, one graph, cost less than n E
(TensorFlow runs independent passes side by side on the two cores): n E / full says by how much.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

CROP = 0.75


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,224")
    parser.add_argument("--n-samples", type=int, default=5)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per part")
    parser.add_argument("--batch", type=int, default=32, help="galaxies per batch")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


def parts(size: int, n: int) -> dict:
    """name -> a callable on (images, ids), each one compiled graph or NumPy step."""
    import tensorflow as tf

    from gz_experiments.config import Sampling
    from gz_experiments.model_spec import ModelSpec
    from gz_experiments.models import build_model, split_model
    from gz_experiments.prediction.sampling import Sampler, dropout_masks
    from gz_experiments.schema import get_schema

    spec = ModelSpec("efficientnetb0", round(size / CROP), 1, CROP, size, 0.2, get_schema("gzd5"))
    model = build_model(spec, seed=0)
    augment, _, _ = split_model(model)
    head = Sampler(model, Sampling(n_samples=n, mc_mode="head"))
    full = Sampler(model, Sampling(n_samples=n, mc_mode="full"))
    one = Sampler(model, Sampling(n_samples=1, mc_mode="head"))
    crop = tf.function(lambda x: augment(x, training=False))
    features = head.functions["features"]
    width, rate = head.width, head.rate
    cached = {}

    def run_features(x, ids):
        cached["features"] = features(x)
        return cached["features"].numpy()

    def run_masks(x, ids):
        cached["masks"] = dropout_masks(ids, 0, n, width, rate)
        return cached["masks"]

    return {
        "augment": lambda x, ids: crop(x).numpy(),
        "features": run_features,
        "masks": run_masks,
        "head": lambda x, ids: head.functions["head"](cached["features"], cached["masks"]).numpy(),
        f"sampler head n={n}": head,
        f"sampler full n={n}": full,
        "sampler one pass": one,
    }


def timings(size: int, n: int, batches: int, batch: int) -> dict[str, float]:
    """Median seconds per batch of each part, in rotating order batch by batch."""
    import numpy as np

    stored = round(size / CROP)
    images = np.random.default_rng(size).random((batch, stored, stored, 1), dtype=np.float32)
    ids = [f"g{i}" for i in range(batch)]
    calls = parts(size, n)
    names = list(calls)
    for name in names:  # tracing; features and masks first, the head reads them
        calls[name](images, ids)
    seconds = {name: [] for name in names}
    for b in range(batches):
        order = names[b % len(names) :] + names[: b % len(names)]
        # features and masks before the head, whatever the rotation: it reads what they left
        order = [x for x in order if x != "head"] + ["head"]
        for name in order:
            start = time.perf_counter()
            calls[name](images, ids)
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    n = args.n_samples
    print(f"batch {args.batch}, n={n}, median ms per batch of {args.batches}")
    print(
        "\n| size | augment | features (E) | masks (M) | heads (H) | head mode | full mode "
        "| one pass | full / head | full / (E+M+H) | n E / full |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        t = timings(size, n, args.batches, args.batch)
        e, m, h = t["features"], t["masks"], t["head"]
        head, full = t[f"sampler head n={n}"], t[f"sampler full n={n}"]
        ms = [1000 * v for v in (t["augment"], e, m, h, head, full, t["sampler one pass"])]
        cells = " | ".join(f"{v:.1f}" for v in ms)
        ratios = f"{full / head:.2f}x | {full / (e + m + h):.2f}x | {n * e / full:.2f}"
        print(f"| {size} | {cells} | {ratios} |")


if __name__ == "__main__":
    main()
