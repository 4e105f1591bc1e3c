"""Everything the first GPU run should answer, in one command and one table.

Exact command (from the repo root, venv active, on a host with `tensorflow[and-cuda]`):

    python -m benchmarks.gpu_check                      # ~10-20 min, most of it the epochs row
    python -m benchmarks.gpu_check --epochs 0           # throughput rows only, a few minutes

Rows, all EfficientNetB0 as the paper preset trains it (stored 300 px, crop 0.75 -> 224 px,
greyscale, batch 128 per GPU), on random in-memory batches (speed does not depend on the data):

- ``train``: single-GPU training img/s with float32 or mixed_float16, with and without XLA
  (`mixed_precision` and `jit_compile`: "auto" picks mixed_float16 and XLA with one GPU);
- ``train, MirroredStrategy``: all visible GPUs, mixed_float16, the global batch 128 x GPUs
  (Keras turns XLA off under tf.distribute); its img/s over the single-GPU mixed_float16 row is
  the scaling;
- ``predict, MC dropout``: `Sampler` img/s, 5 passes in head mode, as `predict` runs it;
- ``paper preset, epoch e``: `run_train` on the paper preset's simulated default dataset
  (simulated and sharded once, cached), its first `--epochs` epochs: seconds, img/s, losses.

Without a GPU it prints one line and exits 0 (there is nothing to measure). ``--allow-cpu``
runs the rows on the CPU anyway, to smoke-test this script (with ``--architecture small_cnn
--size 16 --preset debug``: seconds); those numbers say nothing about GPUs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import keras

CROP = 0.75


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="image side the encoder sees")
    parser.add_argument("--batch", type=int, default=128, help="galaxies per step and GPU")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per throughput row")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the preset's row; 0: skip")
    parser.add_argument("--preset", default="paper", help="preset of the epochs row")
    parser.add_argument("--architecture", default="efficientnetb0")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke test without a GPU")
    return parser.parse_args(argv)


def gpus() -> list:
    """The visible GPUs, with memory growth on (one process runs every row)."""
    import tensorflow as tf

    devices = tf.config.list_physical_devices("GPU")
    for device in devices:
        tf.config.experimental.set_memory_growth(device, True)
    return devices


def model_and_data(args, spec_batch: int, policy: str, jit: str, strategy=None):
    """A compiled model under `strategy`, and one random batch at the stored size."""
    import numpy as np
    import tensorflow as tf

    from gz_experiments.config import TrainConfig
    from gz_experiments.model_spec import ModelSpec
    from gz_experiments.models import build_model
    from gz_experiments.schema import get_schema
    from gz_experiments.training.fit import compile_model, dtype_policy

    stored = round(args.size / CROP)
    spec = ModelSpec(args.architecture, stored, 1, CROP, args.size, 0.2, get_schema("gzd5"))
    config = TrainConfig.resolve("paper", jit_compile=jit)
    with dtype_policy(policy), (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(spec, seed=0)
        compile_model(model, config, spec)
    rng = np.random.default_rng(0)
    x = rng.random((spec_batch, stored, stored, 1), dtype=np.float32)
    y = rng.integers(0, 6, (spec_batch, spec.schema.n_answers)).astype(np.float32)
    return model, x, y


def train_rate(args, policy: str, jit: str, strategy=None) -> float:
    """Training img/s after a warm-up (tracing, compiling) of 3 steps."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync if strategy else 1
    batch = args.batch * replicas
    model, x, y = model_and_data(args, batch, policy, jit, strategy)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False)
    rate = args.steps * batch / (time.perf_counter() - start)
    keras.backend.clear_session()
    return rate


def predict_rate(args) -> float:
    """MC-dropout prediction img/s (5 passes, head mode), as `predict` runs it."""
    from gz_experiments.config import Sampling
    from gz_experiments.prediction.sampling import Sampler

    model, x, _ = model_and_data(args, args.batch, "true", "auto")
    sampler = Sampler(model, Sampling(n_samples=5, batch_size=args.batch))
    ids = [str(i) for i in range(len(x))]
    for _ in range(2):
        sampler(x, ids)
    start = time.perf_counter()
    for _ in range(args.steps):
        sampler(x, ids)
    rate = args.steps * len(x) / (time.perf_counter() - start)
    keras.backend.clear_session()
    return rate


def epoch_rows(args) -> list[tuple[str, str, str, str]]:
    """The preset's first epochs on its simulated default dataset: one row per epoch."""
    from gz_experiments.config import TrainConfig
    from gz_experiments.training.run import images_per_epoch, run_train, training_data

    config = TrainConfig.resolve(args.preset, epochs=args.epochs, verbose=2)
    manifest = training_data(config)
    seconds = EpochSeconds()
    with tempfile.TemporaryDirectory(prefix="gz-gpu-check-") as work_dir:
        result = run_train(config, manifest, work_dir=work_dir, callbacks=[seconds])
    n_images, history, rows = images_per_epoch(config, manifest), result.fit.history, []
    for e, elapsed in enumerate(seconds.seconds):
        rows.append(
            (
                f"{args.preset} preset, epoch {e + 1}",
                config.mixed_precision,
                config.jit_compile,
                f"{n_images / elapsed:.0f} img/s, {elapsed:.0f} s; loss {history['loss'][e]:.3f}, "
                f"val_loss {history['val_loss'][e]:.3f} (baseline {result.baseline_val_loss:.3f})",
            )
        )
    return rows


class EpochSeconds(keras.callbacks.Callback):
    """Each epoch's wall time (training and validation)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def measured(rate, *args) -> tuple[float | None, str]:
    """(img/s, "N img/s"), or (None, the one-line reason) when the row fails (out of memory, an
    op without a GPU or XLA kernel): one failing setting must not cost the other rows."""
    try:
        value = rate(*args)
    except Exception as exc:  # noqa: BLE001 (any failure is this row's result)
        import keras

        keras.backend.clear_session()
        return None, failure(exc)
    return value, f"{value:.0f} img/s"


def failure(exc: Exception) -> str:
    return f"failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


def throughput_rows(args, n_gpus: int) -> list[tuple[str, str, str, str]]:
    import tensorflow as tf

    rows, rates = [], {}
    for policy, jit in (("false", "false"), ("false", "true"), ("true", "false"), ("true", "true")):
        rates[policy, jit], result = measured(train_rate, args, policy, jit)
        name = "mixed_float16" if policy == "true" else "float32"
        rows.append(("train, 1 GPU", name, "on" if jit == "true" else "off", result))
    if n_gpus:
        rate, result = measured(train_rate, args, "true", "false", tf.distribute.MirroredStrategy())
        single = rates["true", "false"]
        if rate and single:
            result += f" ({rate / single:.2f}x the 1-GPU mixed_float16 row)"
        rows.append((f"train, MirroredStrategy, {n_gpus} GPUs", "mixed_float16", "off", result))
    result = measured(predict_rate, args)[1]
    rows.append(("predict, MC dropout x5 (head)", "mixed_float16", "auto", result))
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    devices = gpus()
    if not devices and not args.allow_cpu:
        print("gpu_check: no GPU visible to TensorFlow (CPU-only machine): nothing to measure.")
        return
    started = time.perf_counter()
    rows = throughput_rows(args, len(devices))
    if args.epochs:
        try:
            rows += epoch_rows(args)
        except Exception as exc:  # noqa: BLE001 (the table above is still worth printing)
            rows.append((f"{args.preset} preset, first epochs", "auto", "auto", failure(exc)))
    names = ", ".join(d.name for d in devices) or "none (CPU smoke test)"
    print(f"\n{args.architecture} at {args.size} px, batch {args.batch} per GPU; GPUs: {names}")
    print("\n| check | precision | XLA | result |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
