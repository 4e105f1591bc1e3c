"""Sharding and input-pipeline speed, side by side in one run, printed as a table.

    python -m benchmarks.bench_shards          # ~2-3 minutes on 2 cores

Uses the real DECaLS images in ../shared/data/gzd5_real_128 (or the SDSS ones in gz1_sdss_64),
repeated under new ids to 2,800 galaxies, upsampled to 300 px greyscale as the paper's shards.
- sharding: galaxies/s of write_shards (all cores) vs a bare one-core Pillow decode+resize loop;
- disk: bytes per galaxy for raw and PNG encoding;
- reading: images/s of read + decode + augment (crop 0.75, resize to 224) vs the training step
  rate of EfficientNetB0 (weights=None, 224x224x1, batch 32) on the same cores.
The second row (the bare loop over all cores) shows what the machine gives at that moment: other
processes on a shared VM lower every parallel ratio alike. CPU ms/galaxy (this process plus its
workers, startup included) does not depend on that load; the "idle-machine bound" rows turn it into
the rate with every core busy (cores / CPU time) and its ratio to the bare loop's CPU cost.
TensorFlow is imported inside functions: the shard workers re-import this module (spawn).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from gz_experiments.config import ShardConfig
from gz_experiments.schema import get_schema

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("gzd5_real_128", "gz1_sdss_64")
N_GALAXIES = 2800
IMG_SIZE, CROP, FINAL, BATCH = 300, 0.75, 224, 32


def find_source() -> Path | None:
    return next((SHARED / name for name in SOURCES if (SHARED / name).is_dir()), None)


def make_catalog(source: Path, folder: Path) -> Path:
    """The source's images repeated under new ids, with zero gzd5 votes (speed ignores labels)."""
    images = pd.read_csv(source / "catalog.csv", dtype={"id_str": str})["file_loc"]
    files = [str(source / f) for f in images]
    files = (files * (N_GALAXIES // len(files) + 1))[:N_GALAXIES]
    catalog = pd.DataFrame({"id_str": [f"g{i}" for i in range(len(files))], "file_loc": files})
    for col in get_schema("gzd5").label_cols:
        catalog[col] = 0.0
    path = folder / "catalog.csv"
    catalog.to_csv(path, index=False)
    return path


def bare_pillow(files: list[str]) -> int:
    for f in files:
        with Image.open(f) as image:
            np.asarray(image.convert("RGB").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS))
    return len(files)


class Timer:
    """Wall time and CPU time of this process and its finished children (the decode workers)."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu_seconds() - self.cpu


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bare_pillow_rate(catalog: Path, processes: int = 1) -> tuple[float, float]:
    """The bare loop in one process, or split over `processes` (startup included, as sharding)."""
    files = pd.read_csv(catalog)["file_loc"].tolist()
    with Timer() as timer:
        if processes == 1:
            bare_pillow(files)
        else:
            chunks = [files[i : i + 32] for i in range(0, len(files), 32)]
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(processes, mp_context=context) as pool:
                sum(pool.map(bare_pillow, chunks))
    return len(files) / timer.wall, 1000 * timer.cpu / len(files)


def shard_rate(catalog: Path, shard_dir: Path, encoding: str):
    from gz_experiments.shards.writer import write_shards

    config = ShardConfig.resolve(
        "paper", catalog=str(catalog), shard_dir=str(shard_dir), encoding=encoding, shard_size=256
    )
    with Timer() as timer:
        manifest = write_shards(config, progress=False).manifest
    n = manifest.counts["written"]
    files = [f for split in manifest.splits.values() for f in split]
    size = sum(f.path.stat().st_size for f in files) / n
    return manifest, n / timer.wall, 1000 * timer.cpu / n, size


def read_rate(manifest, warmup: int = 5, batches: int = 30) -> float:
    import tensorflow as tf

    from gz_experiments.augment import Augmentation
    from gz_experiments.shards.dataset import make_dataset

    augment = Augmentation(CROP, FINAL, seed=0)
    ds = make_dataset(manifest, "train", batch_size=BATCH, training=True, seed=0, repeat=True)
    ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    batches_iter = iter(ds.prefetch(tf.data.AUTOTUNE))
    for _ in range(warmup):
        next(batches_iter)
    start = time.perf_counter()
    for _ in range(batches):
        next(batches_iter)
    return batches * BATCH / (time.perf_counter() - start)


def model_rate(warmup: int = 1, steps: int = 3) -> float:
    import keras

    backbone = keras.applications.EfficientNetB0(
        weights=None, include_top=False, input_shape=(FINAL, FINAL, 1), pooling="avg"
    )
    model = keras.Sequential([backbone, keras.layers.Dense(34)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, FINAL, FINAL, 1), dtype=np.float32)
    y = rng.random((BATCH, 34), dtype=np.float32)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    source = find_source()
    if source is None:
        print(f"skipped: none of {', '.join(SOURCES)} in {SHARED} (real images needed)")
        return
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        tmp = Path(tmp)
        catalog = make_catalog(source, tmp)
        bare = bare_pillow_rate(catalog)
        ideal = bare_pillow_rate(catalog, cores)
        import tensorflow  # noqa: F401  (a once-per-process cost, not a sharding rate)

        shards = {enc: shard_rate(catalog, tmp / enc, enc) for enc in ("raw", "png")}
        reads = {enc: read_rate(result[0]) for enc, result in shards.items()}
    model = model_rate()
    rows = [
        ("sharding: bare Pillow decode+resize, 1 process", bare[0], "galaxies/s", bare[1], 1.0),
        (
            f"sharding: the same bare loop, {cores} processes",
            ideal[0],
            "galaxies/s",
            ideal[1],
            ideal[0] / bare[0],
        ),
    ]
    for enc, (_, rate, cpu, _) in shards.items():
        rows.append(
            (
                f"sharding: write_shards {enc}, {cores} workers",
                rate,
                "galaxies/s",
                cpu,
                rate / bare[0],
            )
        )
    for enc, (_, _, cpu, _) in shards.items():
        # The rate with every core busy at this CPU cost, i.e. on a machine nobody else uses.
        bound = 1000 * cores / cpu
        name = f"sharding: write_shards {enc}, idle-machine bound"
        rows.append((name, bound, "galaxies/s", None, cores * bare[1] / cpu))
    for enc, (*_, size) in shards.items():
        rows.append((f"disk: {enc}", size, "bytes/galaxy", None, size / shards["raw"][3]))
    rows.append(
        (f"training step: EfficientNetB0 {FINAL}px x1, batch {BATCH}", model, "img/s", None, 1.0)
    )
    for enc, rate in reads.items():
        rows.append(
            (
                f"reading: read+decode+augment {enc} {IMG_SIZE}->{FINAL}",
                rate,
                "img/s",
                None,
                rate / model,
            )
        )
    print(f"\n{N_GALAXIES} galaxies from {source.name}, {IMG_SIZE} px greyscale, {cores} cores")
    print(
        "ratios: sharding vs the 1-process bare loop, disk vs raw, reading vs the training step\n"
    )
    print_table(rows)


def print_table(rows) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"| {'measurement':<{width}} | {'value':>21} | {'CPU ms/galaxy':>13} | {'ratio':>7} |")
    print(f"|{'-' * (width + 2)}|{'-' * 23}|{'-' * 15}|{'-' * 9}|")
    for name, value, unit, cpu, ratio in rows:
        cpu_text = f"{cpu:.2f}" if cpu is not None else ""
        number = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
        print(f"| {name:<{width}} | {number + ' ' + unit:>21} | {cpu_text:>13} | {ratio:>6.2f}x |")


if __name__ == "__main__":
    main()
