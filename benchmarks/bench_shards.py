"""Sharding and input-pipeline speed, side by side in one run, printed as a table.

    python -m benchmarks.bench_shards          # ~3-4 minutes on 2 cores
    python -m benchmarks.bench_shards --smoke  # 64 galaxies at 64 px, no reading rows: seconds

Uses the real DECaLS images in ../shared/data/gzd5_real_128 (or the SDSS ones in gz1_sdss_64),
repeated under new ids to 2,800 galaxies, upsampled to 300 px greyscale as the paper's shards.
- sharding: galaxies/s of run_shard (all cores) vs a bare one-core Pillow decode+resize loop;
- disk: bytes per galaxy for raw and PNG encoding;
- reading: images/s of read + decode + augment (crop 0.75, resize to 224) vs the training step
  rate of EfficientNetB0 (weights=None, 224x224x1, batch 32) on the same cores.
- FITS vs PNG: the same simulated galaxies (128 px, g, r, z) as the simulator's PNG and as its
  flux in .fits, .fits.gz and .fits.fz (tile-compressed), repeated to the same count and sharded
  by run_shard with the same settings (fits_preset=simulator: the shards are identical);
  galaxies/s and CPU ms/galaxy, ratio vs the PNG, and the input files' bytes per galaxy.
The second row (the bare loop over all cores) shows what the machine gives at that moment: other
processes on a shared VM lower every parallel ratio alike. CPU ms/galaxy (this process plus its
workers, startup included) does not depend on that load; the "idle-machine bound" rows turn it into
the rate with every core busy (cores / CPU time) and its ratio to the bare loop's CPU cost.
TensorFlow is imported inside functions: the shard workers re-import this module (spawn).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
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
# FITS vs PNG: unique simulated galaxies (repeated to the galaxy count) and their side in pixels.
SIM_UNIQUE, SIM_SIDE = 200, 128
SIM_FORMATS = (".png", ".fits", ".fits.gz", ".fits.fz")


def find_source() -> Path | None:
    return next((SHARED / name for name in SOURCES if (SHARED / name).is_dir()), None)


def make_catalog(source: Path, folder: Path, n: int = N_GALAXIES) -> Path:
    """The source's images repeated under new ids, with one gzd5 vote per answer (speed ignores
    labels; a catalog of zero votes is refused)."""
    images = pd.read_csv(source / "catalog.csv", dtype={"id_str": str})["file_loc"]
    return write_catalog([str(source / f) for f in images], folder, n)


def write_catalog(files: list[str], folder: Path, n: int) -> Path:
    files = (files * (n // len(files) + 1))[:n]
    catalog = pd.DataFrame({"id_str": [f"g{i}" for i in range(len(files))], "file_loc": files})
    for col in get_schema("gzd5").label_cols:
        catalog[col] = 1.0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.csv"
    catalog.to_csv(path, index=False)
    return path


def make_simulated_catalogs(folder: Path, n: int) -> dict[str, Path]:
    """{suffix: catalog}: the same simulated galaxies as PNG and as FITS flux in each format."""
    from gz_experiments.images.fits.write import write_fits
    from gz_experiments.simulate.latents import galaxy, sample_latents
    from gz_experiments.simulate.png import write_png
    from gz_experiments.simulate.render import BANDS, FIELD_ARCSEC, render_flux, stretch

    unique = min(SIM_UNIQUE, n)
    latents = sample_latents(0, unique)
    files: dict[str, list[str]] = {suffix: [] for suffix in SIM_FORMATS}
    (folder / "images").mkdir(parents=True)
    for i in range(unique):
        flux = render_flux(galaxy(latents, i), SIM_SIDE, np.random.default_rng(i))
        for suffix in SIM_FORMATS:
            path = folder / "images" / f"s{i}{suffix}"
            if suffix == ".png":
                write_png(stretch(flux), path)
            else:
                write_fits(path, flux, BANDS, FIELD_ARCSEC / SIM_SIDE)
            files[suffix].append(str(path))
    return {s: write_catalog(f, folder / s.lstrip("."), n) for s, f in files.items()}


def bare_pillow(files: list[str], size: int = IMG_SIZE) -> int:
    for f in files:
        with Image.open(f) as image:
            np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
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


def bare_pillow_rate(catalog: Path, processes: int = 1, size: int = IMG_SIZE):
    """The bare loop in one process, or split over `processes` (startup included, as sharding)."""
    files = pd.read_csv(catalog)["file_loc"].tolist()
    with Timer() as timer:
        if processes == 1:
            bare_pillow(files, size)
        else:
            chunks = [files[i : i + 32] for i in range(0, len(files), 32)]
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(processes, mp_context=context) as pool:
                sum(pool.map(partial(bare_pillow, size=size), chunks))
    return len(files) / timer.wall, 1000 * timer.cpu / len(files)


def shard_rate(catalog: Path, shard_dir: Path, encoding: str, img_size: int = IMG_SIZE, **more):
    from gz_experiments.shards.writer import run_shard

    config = ShardConfig.resolve(
        "paper", catalog=str(catalog), shard_dir=str(shard_dir), encoding=encoding,
        shard_size=256, img_size=img_size, **more,
    )  # fmt: skip
    with Timer() as timer:
        manifest = run_shard(config, progress=False).manifest
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-galaxies", type=int, default=N_GALAXIES, help="galaxies per run")
    parser.add_argument("--img-size", type=int, default=IMG_SIZE, help="stored side in pixels")
    parser.add_argument("--smoke", action="store_true",
                        help="64 galaxies at 64 px, no reading / training-step rows")  # fmt: skip
    args = parser.parse_args(argv)
    if args.smoke:
        args.n_galaxies, args.img_size = 64, 64
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    source = find_source()
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        tmp = Path(tmp)
        if source is None:
            print(f"real-image rows skipped: none of {', '.join(SOURCES)} in {SHARED}")
        else:
            rows = real_image_rows(source, tmp / "real", args, cores)
            print(f"\n{args.n_galaxies} galaxies from {source.name}, {args.img_size} px "
                  f"greyscale, {cores} cores")  # fmt: skip
            print("ratios: sharding vs the 1-process bare loop, disk vs raw, reading vs the "
                  "training step\n")  # fmt: skip
            print_table(rows)
        rows = fits_rows(tmp / "fits", args, cores)
    print(f"\nFITS vs PNG: {args.n_galaxies} galaxies ({min(SIM_UNIQUE, args.n_galaxies)} "
          f"simulated, {SIM_SIDE} px, g r z) -> {args.img_size} px greyscale raw shards, {cores} "
          f"workers; ratios vs the PNG\n")  # fmt: skip
    print_table(rows)


def real_image_rows(source: Path, tmp: Path, args, cores: int) -> list[tuple]:
    size = args.img_size
    catalog = make_catalog(source, tmp, args.n_galaxies)
    bare = bare_pillow_rate(catalog, size=size)
    ideal = bare_pillow_rate(catalog, cores, size=size)
    import tensorflow  # noqa: F401  (a once-per-process cost, not a sharding rate)

    shards = {enc: shard_rate(catalog, tmp / enc, enc, size) for enc in ("raw", "png")}
    reads = {} if args.smoke else {enc: read_rate(result[0]) for enc, result in shards.items()}
    rows = [
        ("sharding: bare Pillow decode+resize, 1 process", bare[0], "galaxies/s", bare[1], 1.0),
        (f"sharding: the same bare loop, {cores} processes", ideal[0], "galaxies/s", ideal[1],
         ideal[0] / bare[0]),
    ]  # fmt: skip
    for enc, (_, rate, cpu, _) in shards.items():
        name = f"sharding: run_shard {enc}, {cores} workers"
        rows.append((name, rate, "galaxies/s", cpu, rate / bare[0]))
    for enc, (_, _, cpu, _) in shards.items():
        # The rate with every core busy at this CPU cost, i.e. on a machine nobody else uses.
        bound = 1000 * cores / cpu
        name = f"sharding: run_shard {enc}, idle-machine bound"
        rows.append((name, bound, "galaxies/s", None, cores * bare[1] / cpu))
    for enc, (*_, disk) in shards.items():
        rows.append((f"disk: {enc}", disk, "bytes/galaxy", None, disk / shards["raw"][3]))
    if reads:
        model = model_rate()
        name = f"training step: EfficientNetB0 {FINAL}px x1, batch {BATCH}"
        rows.append((name, model, "img/s", None, 1.0))
        for enc, rate in reads.items():
            name = f"reading: read+decode+augment {enc} {size}->{FINAL}"
            rows.append((name, rate, "img/s", None, rate / model))
    return rows


def fits_rows(tmp: Path, args, cores: int) -> list[tuple]:
    """run_shard on the same galaxies as PNG and as FITS (plain, gzipped, tile-compressed)."""
    catalogs = make_simulated_catalogs(tmp, args.n_galaxies)
    results = {
        suffix: shard_rate(cat, tmp / f"shards{suffix}", "raw", args.img_size,
                           fits_preset="simulator")
        for suffix, cat in catalogs.items()
    }  # fmt: skip
    png_rate = results[".png"][1]
    rows = []
    for suffix, (_, rate, cpu, _) in results.items():
        name = f"sharding: run_shard {suffix} -> raw, {cores} workers"
        rows.append((name, rate, "galaxies/s", cpu, rate / png_rate))
    for suffix, (_, _, cpu, _) in results.items():
        name = f"sharding: run_shard {suffix}, idle-machine bound"
        rows.append((name, 1000 * cores / cpu, "galaxies/s", None, results[".png"][2] / cpu))
    sizes = {s: _mean_file_size(cat) for s, cat in catalogs.items()}
    for suffix, size in sizes.items():
        rows.append((f"input: {suffix} files", size, "bytes/galaxy", None, size / sizes[".png"]))
    return rows


def _mean_file_size(catalog: Path) -> float:
    files = set(pd.read_csv(catalog)["file_loc"])
    return sum(Path(f).stat().st_size for f in files) / len(files)


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
