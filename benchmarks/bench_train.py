"""Training throughput: our training step vs a bare `keras.Model.fit`, and glibc malloc settings.

Exact command (from the repo root, venv active; ~15 min on 2 cores):

    python -m benchmarks.bench_train
    python -m benchmarks.bench_train --sizes 64 --steps 6 --epochs 3     # ~2 min

For each EfficientNetB0 image size (the encoder's input; shards are stored at size / 0.75 and
centre/random-cropped back, as in the paper's 300 -> 224), two measurements side by side in one
process, greyscale, batch 32:

- **ours**: `train.fit` reading PNG TFRecord shards through `data.make_dataset`, with the
  `MlflowEpochLogger` callback (sqlite store) and the checkpointing callback — the real step;
- **bare**: the same compiled model (`build_model` + `compile_model`), `model.fit` on in-memory
  NumPy tensors of the same shape, no callbacks.

Throughput = training images / training seconds of each epoch (validation and checkpoint saving
excluded, for both), the median over epochs after the first (which includes tracing). Target:
ours / bare >= 0.9.

The whole measurement runs twice, in fresh subprocesses: with glibc's default allocator settings
and with the glibc tuning that sped up a PyTorch peer (stack_facts.md), `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
MALLOC_TOP_PAD_=1073741824` (set before the process starts). Measured here it made no difference to
TensorFlow, so the Makefile does not set it. This VM's timings vary by
up to ~40 % between runs, so only ratios within one table are meaningful.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MALLOC_ENV = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "100000000000",
    "MALLOC_TOP_PAD_": "1073741824",
}
BATCH = 32
CROP = 0.75


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="64,128,224", help="encoder image sizes, comma-separated"
    )
    parser.add_argument("--steps", type=int, default=8, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs (the first is discarded)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---- one measurement process ------------------------------------------------------------------


def synthetic_catalog(folder: Path, n: int, size: int) -> Path:
    """Noisy discs as PNGs with random vote counts: decoding cost like real galaxy images."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from gz_experiments.schema import get_schema

    schema = get_schema("gzd5")
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size] - size / 2
    rows = []
    for i in range(n):
        disc = np.hypot(xx, yy) < rng.uniform(size / 8, size / 2)
        pixels = np.clip(disc * 180 + rng.normal(30, 15, (size, size)), 0, 255).astype(np.uint8)
        path = folder / "images" / f"g{i}.png"
        Image.fromarray(pixels).convert("RGB").save(path)
        votes = rng.integers(0, 6, schema.n_answers)
        rows.append(
            {
                "id_str": f"g{i}",
                "file_loc": str(path),
                **dict(zip(schema.label_cols, votes, strict=True)),
            }
        )
    catalog = folder / "catalog.csv"
    pd.DataFrame(rows).to_csv(catalog, index=False)
    return catalog


def synthetic_shards(folder: Path, n: int, stored: int):
    """`synthetic_catalog` sharded at `stored` px by the paper preset, 80/10/10; its manifest."""
    from gz_experiments.config import ShardConfig
    from gz_experiments.shards.writer import run_shard

    shard_config = ShardConfig.resolve(
        "paper",
        catalog=str(synthetic_catalog(folder, n, stored)),
        shard_dir=str(folder / "shards"),
        img_size=stored,
        val_fraction=0.1,
        test_fraction=0.1,
    )
    return run_shard(shard_config, progress=False).manifest


def median_after_first(values: list[float]) -> float:
    return statistics.median(values[1:] if len(values) > 1 else values)


def epoch_timer(images_per_epoch: int, rates: dict[str, list[float]]):
    """A Keras callback recording the training phase of each epoch (up to validation).

    Both wall-clock and process CPU time (all threads, tf.data's included): CPU time barely
    moves when other programs compete for the two cores, wall time does.
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = (time.perf_counter(), time.process_time())
            self.done = False

        def on_test_begin(self, logs=None):
            if not self.done:
                wall, cpu = time.perf_counter() - self.start[0], time.process_time() - self.start[1]
                rates["wall"].append(images_per_epoch / wall)
                rates["cpu"].append(images_per_epoch / cpu)
                self.done = True

        def on_epoch_end(self, epoch, logs=None):
            self.on_test_begin()

    return EpochTimer()


def medians(rates: dict[str, list[float]]) -> dict[str, float]:
    return {kind: median_after_first(values) for kind, values in rates.items()}


def measure_bare(spec, config) -> dict[str, float]:
    import numpy as np

    from gz_experiments.models import build_model
    from gz_experiments.training.fit import compile_model

    n = config.steps_per_epoch * BATCH
    rng = np.random.default_rng(0)
    x = rng.random((n, spec.img_size, spec.img_size, 1), dtype=np.float32)
    y = rng.integers(0, 6, (n, len(spec.label_cols))).astype(np.float32)
    model = build_model(spec, seed=0)
    compile_model(model, config, spec)
    rates = {"wall": [], "cpu": []}
    timer = epoch_timer(n, rates)
    model.fit(
        x, y, batch_size=BATCH, epochs=config.epochs, shuffle=False, verbose=0, callbacks=[timer]
    )
    return medians(rates)


def measure_ours(config, manifest, work_dir: Path) -> dict[str, float]:
    import mlflow

    from gz_experiments.tracking.train import MlflowEpochLogger
    from gz_experiments.training.fit import CHECKPOINT_DIR, fit

    images = config.steps_per_epoch * BATCH
    rates = {"wall": [], "cpu": []}
    with mlflow.start_run():
        logger = MlflowEpochLogger(
            images_per_epoch=images, checkpoint_dir=work_dir / CHECKPOINT_DIR
        )
        fit(config, manifest, callbacks=[epoch_timer(images, rates), logger], work_dir=work_dir)
    return medians(rates)


def worker(args: argparse.Namespace) -> None:
    """Measure every size in this process; print one JSON line per size."""
    with tempfile.TemporaryDirectory(prefix="gz-bench-train-") as tmp:
        tmp = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
        from gz_experiments.config import TrainConfig
        from gz_experiments.training.fit import model_spec

        for size in [int(s) for s in args.sizes.split(",")]:
            input_size = round(size / CROP)
            folder = tmp / f"s{size}"
            manifest = synthetic_shards(folder, 3 * BATCH, input_size)
            config = TrainConfig.resolve(
                "paper",
                shard_dir=str(folder / "shards"),
                image_size=size,
                crop_fraction=CROP,
                batch_size=BATCH,
                epochs=args.epochs,
                steps_per_epoch=args.steps,
                patience=100,
                verbose=0,
            )
            bare = measure_bare(model_spec(config, manifest), config)
            ours = measure_ours(config, manifest, folder / "work")
            peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
            print(json.dumps({"size": size, "bare": bare, "ours": ours, "peak_rss_gb": peak_gb}))


# ---- driver -----------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace, tuned_malloc: bool) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    if tuned_malloc:
        env.update(MALLOC_ENV)
    env.update(TF_CPP_MIN_LOG_LEVEL="3", MLFLOW_DISABLE_TELEMETRY="true", CUDA_VISIBLE_DEVICES="-1")
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_train",
        "--worker",
        "--sizes",
        args.sizes,
        "--steps",
        str(args.steps),
        "--epochs",
        str(args.epochs),
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"benchmark worker failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    started = time.perf_counter()
    results = {tuned: run_worker(args, tuned) for tuned in (False, True)}
    print(
        f"EfficientNetB0, greyscale, batch {BATCH}, {args.steps} steps x {args.epochs} epochs "
        f"(median of epochs 2..), {os.cpu_count()} cores; img/s = training images / wall seconds, "
        f"img/CPU-s = per CPU second of the process (robust to other load on the machine)"
    )
    print(
        "\n| size | malloc | bare img/s | ours img/s | ours/bare | bare img/CPU-s | ours img/CPU-s | ours/bare |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for tuned, rows in results.items():
        for r in rows:
            b, o = r["bare"], r["ours"]
            print(
                f"| {r['size']} | {'tuned' if tuned else 'default'} | {b['wall']:.1f} | "
                f"{o['wall']:.1f} | {o['wall'] / b['wall']:.2f} | {b['cpu']:.1f} | "
                f"{o['cpu']:.1f} | {o['cpu'] / b['cpu']:.2f} |"
            )
    print(
        "\n| size | ours img/s default / tuned | ratio | img/CPU-s default / tuned | ratio | peak RSS GB default / tuned |"
    )
    print("|---|---|---|---|---|---|")
    for d, t in zip(results[False], results[True], strict=True):
        dw, tw, dc, tc = d["ours"]["wall"], t["ours"]["wall"], d["ours"]["cpu"], t["ours"]["cpu"]
        print(
            f"| {d['size']} | {dw:.1f} / {tw:.1f} | {tw / dw:.2f} | {dc:.1f} / {tc:.1f} | "
            f"{tc / dc:.2f} | {d['peak_rss_gb']:.1f} / {t['peak_rss_gb']:.1f} |"
        )
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
