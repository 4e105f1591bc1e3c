"""CPU speed levers of our EfficientNetB0, each against the default, side by side in turns.

Exact command (from the repo root, venv active; ~7 min at 128 px with every variant, 2 cores):

    python -m benchmarks.bench_levers --size 128
    python -m benchmarks.bench_levers --size 64 --variants default,keras_bn,bf16 --rounds 3

Each variant is its own worker process (thread pools, oneDNN and dtype policy are fixed per
process), all alive at once and idle except when the driver hands one a turn: a turn is `steps`
training steps (`train_on_batch`, in-memory batch 32, greyscale, augmentation inside the model)
and `steps` one-pass predictions (`Sampler`, n_samples=1). Turns rotate over the variants for
`rounds` rounds, so drift in the machine's load hits all alike; the table gives each variant's
median img/s and its median ratio to `default` within a round.

Variants (what the default does is in parentheses):
- ``default``: fused BatchNorm, channels-last, float32, 2 intra- and 2 inter-op threads, oneDNN on;
- ``keras_bn``: Keras' own (unfused) BatchNormalization;
- ``intra1`` / ``inter1``: 1 intra-op / 1 inter-op thread (2);
- ``onednn_off``: TF_ENABLE_ONEDNN_OPTS=0 (on);
- ``bf16``: the mixed_bfloat16 policy (float32);
- ``nchw``: the encoder in channels-first layout behind a transpose (with Keras' BatchNorm, so
  compare it with ``keras_bn``);
- ``xla``: jit_compile=True for training and prediction (off on CPU; compiling EfficientNetB0
  takes minutes here, so it is not in the default list).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("default", "keras_bn", "intra1", "inter1", "onednn_off", "bf16", "nchw", "xla")
BATCH = 32
CROP = 0.75


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="encoder image size")
    parser.add_argument("--variants", default=",".join(VARIANTS[:-1]))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="train steps and predictions a turn")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---- worker -------------------------------------------------------------------------------------


def efficientnetb0_nchw(input_shape):
    """The registry's EfficientNetB0 built channels-first behind a transpose."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(255.0, name="to_uint8_range")(inputs)
    x = keras.layers.Permute((3, 1, 2))(x)
    keras.config.set_image_data_format("channels_first")
    try:  # layers keep the format they were built with
        backbone = keras.applications.EfficientNetB0(
            include_top=False, weights=None, input_tensor=x, pooling="avg"
        )
    finally:
        keras.config.set_image_data_format("channels_last")
    return keras.Model(inputs, backbone.output, name="encoder")


def setup(variant: str):
    """Process-wide settings of a variant; must run before TensorFlow executes anything."""
    import tensorflow as tf

    threads = {"intra1": (1, 2), "inter1": (2, 1)}.get(variant, (2, 2))
    tf.config.threading.set_intra_op_parallelism_threads(threads[0])
    tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    import gz_experiments.models as models

    if variant in ("keras_bn", "nchw"):
        models.fuse_batchnorm = lambda model: model
    if variant == "nchw":
        models.ARCHITECTURES["efficientnetb0"] = efficientnetb0_nchw


def worker(variant: str, size: int, steps: int) -> None:
    setup(variant)
    import numpy as np

    from gz_experiments.config import Sampling, TrainConfig
    from gz_experiments.model_spec import ModelSpec
    from gz_experiments.models import build_model
    from gz_experiments.prediction.sampling import Sampler
    from gz_experiments.schema import get_schema
    from gz_experiments.training.fit import compile_model, dtype_policy

    jit = "true" if variant == "xla" else "false"
    config = TrainConfig.resolve("paper", mixed_precision="false", jit_compile=jit)
    stored = round(size / CROP)
    spec = ModelSpec("efficientnetb0", stored, 1, CROP, size, 0.2, get_schema("gzd5"))
    with dtype_policy("bfloat16" if variant == "bf16" else "false"):
        model = build_model(spec, seed=0)
        compile_model(model, config, spec)
    sampler = Sampler(model, Sampling(n_samples=1, batch_size=BATCH), jit_compile=jit == "true")
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, stored, stored, 1), dtype=np.float32)
    y = rng.integers(0, 6, (BATCH, spec.schema.n_answers)).astype(np.float32)
    ids = [str(i) for i in range(BATCH)]
    for _ in range(2):  # tracing, oneDNN primitive creation
        model.train_on_batch(x, y)
        sampler(x, ids)
    print(json.dumps({"ready": variant, "params": int(model.count_params())}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            return
        rates = {}
        for what, call in (("train", lambda: model.train_on_batch(x, y)),
                           ("infer", lambda: sampler(x, ids))):  # fmt: skip
            start = time.perf_counter()
            for _ in range(steps):
                call()
            rates[what] = steps * BATCH / (time.perf_counter() - start)
        print(json.dumps(rates), flush=True)


# ---- driver -------------------------------------------------------------------------------------


def start_worker(variant: str, args) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    if variant == "onednn_off":
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    command = [sys.executable, "-m", "benchmarks.bench_levers", "--worker", variant]
    command += ["--size", str(args.size), "--steps", str(args.steps)]
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def read_json(proc: subprocess.Popen, variant: str) -> dict:
    for line in proc.stdout:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"worker {variant} exited with {proc.wait()}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.size, args.steps)
        return
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown or variants[0] != "default":
        sys.exit(f"variants: 'default' first, then any of {', '.join(VARIANTS[1:])}; got {unknown}")
    started = time.perf_counter()
    workers = {}
    for v in variants:  # one at a time: warming up in parallel would only compete
        workers[v] = start_worker(v, args)
        read_json(workers[v], v)
    rates = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            workers[v].stdin.write("go\n")
            workers[v].stdin.flush()
            rates[v].append(read_json(workers[v], v))
    for proc in workers.values():
        proc.stdin.close()
        proc.wait()
    print(f"\nEfficientNetB0 at {args.size} px, batch {BATCH}, greyscale; {args.rounds} rounds of "
          f"{args.steps} train steps + {args.steps} predictions per variant, in turns")  # fmt: skip
    print("\n| variant | train img/s | vs default | predict img/s | vs default |")
    print("|---|---|---|---|---|")
    for v in variants:
        cells = []
        for what in ("train", "infer"):
            pairs = zip(rates[v], rates["default"], strict=True)
            ratio = statistics.median(a[what] / b[what] for a, b in pairs)
            cells += [f"{statistics.median(x[what] for x in rates[v]):.1f}", f"{ratio:.2f}"]
        print(f"| {v} | " + " | ".join(cells) + " |")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
