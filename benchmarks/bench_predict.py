"""MC-dropout prediction speed: the dropout head n times (mc_mode=head) vs n full passes (full).

Exact command (from the repo root, venv active):

    python -m benchmarks.bench_predict                    # ~9 min on 2 cores (Spark row ~6)
    python -m benchmarks.bench_predict --spark-copies     # no Spark row
    python -m benchmarks.bench_predict --both-allocators  # also with glibc malloc tuned (x2 time)

Untrained EfficientNetB0 (weights=None; speed does not depend on the weights), greyscale, the
encoder seeing 64 and 128 px. Part 1 times the model alone on in-memory batches: galaxies/s of
one deterministic pass, of mc_mode=head and of mc_mode=full at n_samples=5, measured side by
side (the modes take turns batch by batch; median of the repeats), and the head-vs-full speed-up.
Part 2 times the whole `predict` path on the 470 real 128 px PNGs of ../shared/data/gzd5_real_128 (decode + resize +
model), head mode, n=5. Part 3, the Spark row (benchmarks/bench_predict_spark.py): the same path
as a Spark local[2] job vs one process, on those PNGs x 1 and x 8, galaxies/s and peak memory.
Timings on a shared VM vary by up to ~40 %: read the ratios. Wall-clock rates are what a user
sees; CPU-time rates (all threads of this process) count the work done and barely move when
other processes compete for the cores, so on a busy machine trust those ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL_IMAGES = REPO.parent / "shared" / "data" / "gzd5_real_128" / "images"
TUNED_MALLOC = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "100000000000",
    "MALLOC_TOP_PAD_": "1073741824",
}


def build(size: int):
    from gz_experiments.model_spec import ModelSpec
    from gz_experiments.models import build_model
    from gz_experiments.schema import get_schema

    spec = ModelSpec("efficientnetb0", size, 1, 0.75, size, 0.2, get_schema("gzd5"))
    return build_model(spec, seed=0), spec


def model_rates(size: int, n_samples: int, n_images: int, batch_size: int, repeats: int):
    """galaxies/s per sampler. The samplers take turns batch by batch (in rotating order), so
    the load of a shared VM, which drifts over minutes, hits them alike."""
    import tensorflow as tf

    from gz_experiments.config import Sampling
    from gz_experiments.prediction.sampling import Sampler

    model, _ = build(size)
    images = np.random.default_rng(0).random((n_images, size, size, 1), dtype=np.float32)
    batches = [images[i : i + batch_size] for i in range(0, n_images, batch_size)]
    ids = [str(i) for i in range(batch_size)]
    single = tf.function(lambda x: model(x, training=False))
    head = Sampler(model, Sampling(n_samples=n_samples, mc_mode="head"))
    full = Sampler(model, Sampling(n_samples=n_samples, mc_mode="full"))
    samplers = {
        "one pass (no MC)": lambda x: single(x).numpy(),
        f"head, n={n_samples}": lambda x: head(x, ids[: len(x)]),
        f"full, n={n_samples}": lambda x: full(x, ids[: len(x)]),
    }
    for sample in samplers.values():
        sample(batches[0])  # trace + warm up
    names = list(samplers)
    wall = {name: [0.0] * repeats for name in names}
    cpu = {name: [0.0] * repeats for name in names}
    for repeat in range(repeats):
        for i, batch in enumerate(batches):
            for name in names[i % 3 :] + names[: i % 3]:
                start, start_cpu = time.perf_counter(), time.process_time()
                samplers[name](batch)
                wall[name][repeat] += time.perf_counter() - start
                cpu[name][repeat] += time.process_time() - start_cpu
    return {
        name: (n_images / statistics.median(wall[name]), n_images / statistics.median(cpu[name]))
        for name in names
    }


def end_to_end_rate(size: int, n_samples: int, batch_size: int) -> tuple[int, float]:
    from gz_experiments.config import Sampling
    from gz_experiments.prediction.stream import predict

    model, spec = build(size)
    files = sorted(REAL_IMAGES.glob("*.png"))
    sampling = Sampling(n_samples=n_samples, batch_size=batch_size)
    predict(model, spec, files[:batch_size], sampling)  # warm
    start = time.perf_counter()
    df = predict(model, spec, files, sampling)
    return len(df), len(df) / (time.perf_counter() - start)


def run(args) -> None:
    malloc = "tuned" if os.environ.get("MALLOC_MMAP_MAX_") == "0" else "default"
    print(f"\nglibc malloc: {malloc}; batch {args.batch_size}; {args.n_images} images per repeat")
    header = f"{'px':>4} | {'sampler':<18} | {'galaxies/s':>10} | {'vs full':>7}"
    print(f"{header} | {'galaxies/CPU-s':>14} | {'vs full':>7}")
    print("-" * 77)
    for size in args.sizes:
        rates = model_rates(size, args.n_samples, args.n_images, args.batch_size, args.repeats)
        full_wall, full_cpu = rates[f"full, n={args.n_samples}"]
        for name, (wall, cpu) in rates.items():
            print(
                f"{size:>4} | {name:<18} | {wall:>10.1f} | {wall / full_wall:>6.2f}x | "
                f"{cpu:>14.1f} | {cpu / full_cpu:>6.2f}x"
            )
    if REAL_IMAGES.is_dir():
        print(f"\nwhole predict() on real PNGs, head mode, n={args.n_samples} (decode + model):")
        for size in args.sizes:
            count, rate = end_to_end_rate(size, args.n_samples, args.batch_size)
            print(f"{size:>4} px: {count} galaxies at {rate:.1f} galaxies/s")
    if args.spark_copies and REAL_IMAGES.is_dir():
        spark_row(args.spark_copies, args.sizes[0])


def spark_row(copies: list[int], size: int) -> None:
    """Part 3: the same predict path as a Spark local[2] job (benchmarks/bench_predict_spark)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        print("\nSpark row skipped: needs pyspark (pip install -e '.[spark]') and Java 17+")
        return
    from benchmarks.bench_predict_spark import run as run_spark

    run_spark(copies, "efficientnetb0", size)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--n-samples", type=int, default=5)
    parser.add_argument("--n-images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spark-copies", type=int, nargs="*", default=[1, 8],
                        help="Spark row: the 470 real PNGs x each count; none = no Spark row")  # fmt: skip
    parser.add_argument("--both-allocators", action="store_true",
                        help="run twice in subprocesses: default and tuned glibc malloc")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    if not args.both_allocators:
        run(args)
        return
    # malloc reads its tuning at process start, so each setting needs its own process.
    argv = [a for a in sys.argv[1:] if a != "--both-allocators"]
    for extra in ({}, TUNED_MALLOC):
        env = {k: v for k, v in os.environ.items() if k not in TUNED_MALLOC} | extra
        subprocess.run([sys.executable, "-m", "benchmarks.bench_predict", *argv], env=env,
                       cwd=REPO, check=True)  # fmt: skip


if __name__ == "__main__":
    main()
