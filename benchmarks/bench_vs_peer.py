"""Our training step and prediction against the PyTorch peer (zoobot 2.9, torch CPU), side by side.

Exact command (from the repo root, project venv active; ~11 min on 2 quiet cores):

    python -m benchmarks.bench_vs_peer
    python -m benchmarks.bench_vs_peer --sizes 64 --rounds 1 --steps 2 --infer-batches 2  # smoke

Per encoder image size (64, 128, 224 px), greyscale, batch 32, 2 threads (intra- and inter-op, both
sides), EfficientNetB0 from scratch (no weights downloaded), ~4.0 M trainable parameters each
(printed):

- **train**, ours: the real step, `training.fit` reading PNG TFRecord shards (stored at
  size / 0.75 px; random rotation, flips and 0.75 crop inside the model) through tf.data, with
  checkpointing and the MLflow epoch logger (sqlite store); img/s = training images / wall
  seconds of an epoch up to validation. Peer: `benchmarks/peer_zoobot.py`'s train
  (`ZoobotTree.training_step`, backward, clipping, AdamW) on in-memory tensors.
- **infer**: one deterministic pass; ours = `prediction.sampling.Sampler` with n_samples=1
  (the predict path, compiled graphs) on in-memory batches; peer = `predict_step` in eval mode.
- **infer MC**: galaxies/s with n=5 dropout samples; ours = `Sampler`'s head mode (encoder
  once, dropout head 5x), peer = zoobot's 5 full passes.

Alternation: one `fit` per size runs rounds + 1 epochs; after each epoch but the last, a
callback times our inference and then runs the peer once (its own warm-up, train, infer and
infer MC), while our process waits. So each of our timed epochs follows a peer block and
machine drift hits both alike. Our first epoch (tracing) is not counted. Ratios are the median
over rounds of ours / peer within a round; "per CPU-s" ratios count process CPU seconds instead
of wall seconds and barely move when other programs share the cores.

The peer is not a project dependency: `benchmarks/peer_env.py` builds its venv on first use
(~100 s, 1.9 GB, under ${GZ_CACHE_DIR:-~/.cache/gz_experiments}) or uses GZ_PEER_PYTHON; when it
cannot, the reason is printed, our side is still measured, and the last line says `nan`.
The output ends with one line `min train ratio R`: the smallest ours/peer training ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

CROP = 0.75
WHATS = ("train", "infer", "infer_mc")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,128,224", help="encoder image sizes")
    parser.add_argument("--rounds", type=int, default=3, help="alternations per size")
    parser.add_argument("--steps", type=int, default=8, help="training steps per epoch / peer")
    parser.add_argument("--infer-batches", type=int, default=6, help="timed batches per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="intra- and inter-op threads")
    parser.add_argument("--mc-samples", type=int, default=5)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


# ---- the peer -----------------------------------------------------------------------------------


def peer_block(size: int, args) -> dict[str, dict]:
    """One peer run at `size`: {what: its JSON row}; {} when there is no peer."""
    from benchmarks.peer_env import run_peer

    rows = run_peer(
        [
            *("--sizes", str(size), "--batch", str(args.batch), "--threads", str(args.threads)),
            *("--train-steps", str(args.steps), "--infer-batches", str(args.infer_batches)),
            *("--mc-samples", str(args.mc_samples), "--channels", "1"),
        ],
        env={"CUDA_VISIBLE_DEVICES": "-1"},
    )
    return {row["what"]: row for row in rows if row["framework"] == "zoobot"}


# ---- our side -----------------------------------------------------------------------------------


def ours_infer(model, size: int, args) -> dict[str, dict[str, float]]:
    """{what: {"wall": img/s, "cpu": img/CPU-s}} of one pass and of MC head mode, batch by batch
    in turns, after one untimed call each (tracing)."""
    import numpy as np

    from gz_experiments.config import Sampling
    from gz_experiments.prediction.sampling import Sampler

    stored = model.input_shape[1]
    rng = np.random.default_rng(size)
    images = rng.random((args.batch, stored, stored, 1), dtype=np.float32)
    ids = [f"g{i}" for i in range(args.batch)]
    samplers = {
        "infer": Sampler(model, Sampling(n_samples=1, batch_size=args.batch)),
        "infer_mc": Sampler(model, Sampling(n_samples=args.mc_samples, batch_size=args.batch)),
    }
    seconds = {what: [0.0, 0.0] for what in samplers}
    for sampler in samplers.values():
        sampler(images, ids)
    for i in range(args.infer_batches):
        for what in list(samplers)[i % 2 :] + list(samplers)[: i % 2]:
            wall, cpu = time.perf_counter(), time.process_time()
            samplers[what](images, ids)
            seconds[what][0] += time.perf_counter() - wall
            seconds[what][1] += time.process_time() - cpu
    n = args.batch * args.infer_batches
    return {what: {"wall": n / s[0], "cpu": n / s[1]} for what, s in seconds.items()}


def alternation_hook(size: int, args, results: dict):
    """After each epoch but the last: our inference, then one peer block (see the docstring)."""
    import keras

    class Alternate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch >= args.rounds:
                return
            results["ours"].append(ours_infer(self.model, size, args))
            results["peer"].append(peer_block(size, args))

    return Alternate()


def trainable_parameters(model) -> int:
    import numpy as np

    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def measure_size(size: int, args, tmp: Path) -> dict:
    import mlflow

    from benchmarks.bench_train import epoch_timer, synthetic_shards
    from gz_experiments.config import TrainConfig
    from gz_experiments.tracking.train import MlflowEpochLogger
    from gz_experiments.training.fit import CHECKPOINT_DIR, fit

    folder = tmp / f"s{size}"
    stored = round(size / CROP)
    manifest = synthetic_shards(folder, 3 * args.batch, stored)
    config = TrainConfig.resolve(
        "paper",
        shard_dir=str(folder / "shards"),
        image_size=size,
        crop_fraction=CROP,
        batch_size=args.batch,
        epochs=args.rounds + 1,
        steps_per_epoch=args.steps,
        patience=10_000,
        verbose=0,
    )
    images = args.steps * args.batch
    train = {"wall": [], "cpu": []}
    results = {"ours": [], "peer": [], "train": train}
    with mlflow.start_run():
        logger = MlflowEpochLogger(images_per_epoch=images, checkpoint_dir=folder / CHECKPOINT_DIR)
        callbacks = [epoch_timer(images, train), logger, alternation_hook(size, args, results)]
        fitted = fit(config, manifest, callbacks=callbacks, work_dir=folder)
    results["params"] = trainable_parameters(fitted.model)
    return results


# ---- table --------------------------------------------------------------------------------------


def rounds_of(size: int, res: dict) -> list[dict]:
    """Per round: {what: (ours wall, ours cpu, peer wall, peer cpu)} (peer None if absent)."""
    rows = []
    for r, (ours, peer) in enumerate(zip(res["ours"], res["peer"], strict=True)):
        train = {"wall": res["train"]["wall"][r + 1], "cpu": res["train"]["cpu"][r + 1]}
        row = {}
        for what in WHATS:
            mine = train if what == "train" else ours[what]
            theirs = peer.get(what)
            peer_rates = None
            if theirs:
                cpu = theirs["cpu_seconds"] or float("nan")
                peer_rates = (theirs["images_per_second"], theirs["steps"] * theirs["batch"] / cpu)
            row[what] = (mine["wall"], mine["cpu"], *(peer_rates or (None, None)))
        rows.append(row)
    return rows


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def print_table(results: dict[int, dict], args) -> float:
    print(
        f"\nEfficientNetB0 from scratch, greyscale, batch {args.batch}, {args.threads} threads, "
        f"{args.rounds} alternating rounds (medians); train {args.steps} steps/epoch, inference "
        f"{args.infer_batches} batches/round, MC n={args.mc_samples} (ours: head mode; peer: "
        f"full passes); img/s = wall clock, img/CPU-s = per process CPU second"
    )
    print("\n| size | what | ours img/s | peer img/s | ours/peer | ours/peer per CPU-s |")
    print("|---|---|---|---|---|---|")
    train_ratios = []
    for size, res in results.items():
        rounds = rounds_of(size, res)
        for what in WHATS:
            ours = median(r[what][0] for r in rounds)
            peer = median(r[what][2] for r in rounds)
            ratio = median(r[what][0] / r[what][2] for r in rounds if r[what][2])
            cpu_ratio = median(r[what][1] / r[what][3] for r in rounds if r[what][3])
            if what == "train":
                train_ratios.append(ratio)
            print(f"| {size} | {what} | {ours:.1f} | {peer:.1f} | {ratio:.2f} | {cpu_ratio:.2f} |")
    print(f"\ntrainable parameters: {parameters(results)}")
    return min(train_ratios) if train_ratios else float("nan")


def parameters(results: dict[int, dict]) -> str:
    ours = ", ".join(f"{res['params']:,}" for res in results.values())
    peer = {row["n_params"] for res in results.values() for b in res["peer"] for row in b.values()}
    return f"ours {ours} (per size); peer {', '.join(f'{n:,}' for n in sorted(peer)) or '-'}"


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # the peer runs on CPU; so do we
    import tensorflow as tf

    # Before any op runs: TensorFlow's pools are fixed at first use (the peer sets its own).
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gz-bench-peer-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        results = {size: measure_size(size, args, Path(tmp)) for size in args.sizes}
    ratio = print_table(results, args)
    if all(not block for res in results.values() for block in res["peer"]):
        print("\nno peer measured (the reason is printed above): ours only", file=sys.stderr)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    print(f"min train ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
