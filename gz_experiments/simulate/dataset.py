"""Simulate the embedded default dataset into an ordinary catalog folder, in parallel.

Layout of an output folder (exactly what a user would bring, plus the truth)::

    catalog.csv      id_str, file_loc (images/<id_str>.png or .fits, relative to the folder),
                     {question}_{answer} vote counts and {question}_total-votes (gzd5 tree)
    images/          <id_str>.png: img_size x img_size RGB (g, r, z as B, G, R); or, with
                     image_format=fits, <id_str>.fits: the float32 g, r, z flux cube those PNGs
                     are stretched from (header: BANDS='grz', PIXSCALE; shard it with
                     fits_preset=simulator to get the PNGs' pixels)
    truth.parquet    id_str, true_class, n_volunteers, every latent of `latents.py`
                     (morphology / artifact / interaction as names), {label_col}_true (the true
                     probability of each answer; sums to 1 within each question) and
                     {question}_p_asked_true (probability that a volunteer reaches the question)
    simulation.json  the config that made it, its cache key and the simulator version

Every random draw comes from a stream of the master seed keyed by galaxy or chunk, never by
worker, so the output is identical for any number of worker processes, and the same galaxies
(latents, votes, truth, flux) in either image format.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from gz_experiments.atomic import write_table, write_text
from gz_experiments.config import SimulateConfig
from gz_experiments.errors import UserError
from gz_experiments.processes import die_with_parent
from gz_experiments.progress import show_progress
from gz_experiments.simulate.latents import CATEGORIES, CLASSES, take, true_class
from gz_experiments.simulate.volunteers import Votes, simulate_votes
from gz_experiments.simulate.worker import render_batch

SIMULATOR_VERSION = 3  # bump when the same config would give different data: invalidates caches
CATALOG, TRUTH, IMAGES, META = "catalog.csv", "truth.parquet", "images", "simulation.json"
RENDER_BATCH = 16  # galaxies per task sent to a worker
PIXELS_PER_WORKER = 2_000_000  # less work than this (~120 galaxies of 128 px) per process and
# starting processes (~1 s each) costs more than it saves; applies to n_workers=0 (automatic)
OUTPUT_FIELDS = ("n_galaxies", "img_size", "seed", "votes_high", "votes_low", "low_vote_fraction")


def cache_dir() -> Path:
    """$GZ_CACHE_DIR, else $XDG_CACHE_HOME/gz_experiments, else ~/.cache/gz_experiments."""
    if os.environ.get("GZ_CACHE_DIR"):
        return Path(os.environ["GZ_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gz_experiments"


def config_key(config: SimulateConfig) -> str:
    """Hash of everything that changes the output (not out_dir, n_workers or the preset name)."""
    fields = {name: getattr(config, name) for name in OUTPUT_FIELDS}
    fields["simulator_version"] = SIMULATOR_VERSION
    if config.image_format != "png":  # only then: PNG datasets keep the keys (caches) they had
        fields["image_format"] = config.image_format
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def dataset_dir(config: SimulateConfig) -> Path:
    if config.out_dir:
        return Path(config.out_dir).expanduser()
    return cache_dir() / "simulated" / f"{config.preset}-{config_key(config)}"


def default_dataset(preset: str) -> Path:
    """Catalog path of the embedded default dataset for a preset, simulated once and cached."""
    return simulate(SimulateConfig.resolve(preset))


def simulate(config: SimulateConfig, progress: bool = True) -> Path:
    """Write catalog.csv + images/ + truth.parquet into the dataset folder; the catalog's path.

    Idempotent: a finished folder with the same config is reused. The folder appears whole or
    not at all (written beside it, then renamed), so two processes may race safely.
    """
    out = dataset_dir(config)
    key = config_key(config)
    if _finished(out, key):
        return out / CATALOG
    if out.exists() and any(out.iterdir()):
        raise UserError(
            f"{out}: out_dir is not empty and holds no simulation with this config; choose "
            f"another out_dir or delete it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write(config, work, progress)
        _publish(work, out, key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out / CATALOG


def folder_of(dataset: str | Path) -> Path:
    """The dataset folder from the folder itself or its catalog.csv."""
    path = Path(dataset)
    return path.parent if path.name == CATALOG else path


def summarize(dataset: str | Path) -> dict[str, float]:
    """Metrics of a simulated dataset: galaxies per true class and mean votes per question."""
    folder = folder_of(dataset)
    catalog = pd.read_csv(folder / CATALOG, dtype={"id_str": str})
    classes = pd.read_parquet(folder / TRUTH, columns=["true_class"])["true_class"]
    metrics = {"n_galaxies": float(len(catalog))}
    metrics.update({f"galaxies/{name}": float((classes == name).sum()) for name in CLASSES})
    for column in [c for c in catalog.columns if c.endswith("_total-votes")]:
        question = column.removesuffix("_total-votes")
        metrics[f"mean_votes/{question}"] = float(catalog[column].mean())
    return metrics


@dataclass
class SimulateResult:
    """A simulated dataset folder: its catalog, truth table and summary metrics."""

    config: SimulateConfig
    catalog: Path
    truth: Path
    metrics: dict[str, float]

    def summary(self) -> str:
        return str(self.catalog)


def run_simulate(config: SimulateConfig) -> SimulateResult:
    """The simulate step: write (or find) the dataset and summarise it."""
    catalog = simulate(config)
    return SimulateResult(config, catalog, catalog.parent / TRUTH, summarize(catalog))


def _finished(out: Path, key: str) -> bool:
    meta = out / META
    if not (meta.is_file() and (out / CATALOG).is_file()):
        return False
    return json.loads(meta.read_text()).get("key") == key


def _publish(work: Path, out: Path, key: str) -> None:
    try:
        os.rename(work, out)  # atomic; also replaces an empty folder
    except OSError:
        if not _finished(out, key):  # unless another process finished the same dataset first
            raise


def _write(config: SimulateConfig, work: Path, progress: bool) -> None:
    votes = simulate_votes(config)
    ids = galaxy_ids(config.n_galaxies)
    (work / IMAGES).mkdir(parents=True)
    render_all(votes.latents, config, work / IMAGES, ids, progress)
    write_table(catalog_table(votes, ids, image_suffix(config)), work / CATALOG)
    write_table(truth_table(votes, ids), work / TRUTH)
    meta = {"key": config_key(config), "simulator_version": SIMULATOR_VERSION}
    # Not out_dir / n_workers: a folder is byte-identical however and wherever it was made.
    meta["config"] = {
        k: v for k, v in config.to_dict().items() if k not in ("out_dir", "n_workers")
    }
    write_text(work / META, json.dumps(meta, indent=2, sort_keys=True))


def galaxy_ids(n: int) -> list[str]:
    width = max(6, len(str(n - 1)))
    return [f"sim-{i:0{width}d}" for i in range(n)]


def image_suffix(config: SimulateConfig) -> str:
    return f".{config.image_format}"  # .png or .fits


def catalog_table(votes: Votes, ids: list[str], suffix: str = ".png") -> pd.DataFrame:
    columns = {"id_str": ids, "file_loc": [f"{IMAGES}/{i}{suffix}" for i in ids]}
    for question in votes.schema.questions:
        block = votes.counts[:, question.start : question.end + 1]
        for answer, counts in zip(question.answers, block.T, strict=True):
            columns[answer.label_col] = counts
        columns[question.total_votes_col] = block.sum(axis=1)
    return pd.DataFrame(columns)


def truth_table(votes: Votes, ids: list[str]) -> pd.DataFrame:
    columns: dict[str, object] = {"id_str": ids, "true_class": true_class(votes.latents)}
    columns["n_volunteers"] = votes.n_volunteers
    for name, values in votes.latents.items():
        names = CATEGORIES.get(name)
        columns[name] = np.asarray(names)[values] if names else values
    schema = votes.schema
    for j, label in enumerate(schema.label_cols):
        columns[f"{label}_true"] = votes.true_probs[:, j]
    asked = schema.p_asked(votes.true_probs)
    for question in schema.questions:
        columns[f"{question.name}_p_asked_true"] = asked[:, question.index]
    return pd.DataFrame(columns)


def n_processes(config: SimulateConfig) -> int:
    """Worker processes: as asked, or with n_workers=0 all cores when the work is worth it."""
    batches = -(-config.n_galaxies // RENDER_BATCH)
    if config.n_workers:
        return max(1, min(config.n_workers, batches))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    worth = -(-config.n_galaxies * config.img_size**2 // PIXELS_PER_WORKER)
    return max(1, min(cores or 1, worth, batches))


def render_all(latents, config: SimulateConfig, image_dir: Path, ids, progress: bool) -> None:
    """Render and write every image, in worker processes when it pays."""
    n = config.n_galaxies
    suffix = image_suffix(config)
    tasks = [
        (
            config.seed,
            config.img_size,
            start,
            take(latents, slice(start, start + RENDER_BATCH)),
            [str(image_dir / f"{i}{suffix}") for i in ids[start : start + RENDER_BATCH]],
            config.image_format,
        )
        for start in range(0, n, RENDER_BATCH)
    ]
    workers = n_processes(config)
    with tqdm(total=n, desc="simulate", unit="galaxy", disable=not show_progress(progress)) as bar:
        if workers == 1:
            for task in tasks:
                bar.update(render_batch(task))
            return
        # spawn, not fork: the caller may have TensorFlow (and its threads) loaded.
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=die_with_parent
        ) as pool:
            for done in pool.map(render_batch, tasks):
                bar.update(done)
