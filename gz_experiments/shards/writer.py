"""Catalog -> TFRecord shards + manifest.json + per-split catalogs + rejected.csv.

    result = run_shard(ShardConfig.resolve("paper", catalog="gz.csv", shard_dir="shards"))
    result.manifest  # the complete manifest; result.files_written: files (re)written by this call

Seeded split (70/10/20 by default) of the shuffled labelled catalog, plus an optional unlabelled
catalog as the "predict" split (kept in its own order). Images are decoded and resized by worker
processes (images.decode_image, no TensorFlow there); this process writes the files in order.
PNG/JPEG and FITS (.fits, .fits.gz, .fits.fz) may be mixed; when a catalog names FITS files the
manifest records the FitsSettings that stretched them (`fits`) and counts the galaxies whose
NaN/inf/blank pixels were filled (`counts.fits_filled_images`, per file `filled_pixels`).

Idempotent and resumable: the manifest is saved after every finished file, so a re-run with the
same inputs skips files whose sha256 still matches and a finished folder is left untouched.
Different inputs refuse to mix with existing shards unless `overwrite` is set.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.catalog import FILE_COL, ID_COL, file_sha256, load_catalog, split_catalog
from gz_experiments.config import ShardConfig
from gz_experiments.errors import UserError
from gz_experiments.images import FitsSettings, decode_image_and_count_filled, encode_png, is_fits
from gz_experiments.processes import die_with_parent
from gz_experiments.progress import show_progress
from gz_experiments.schema import Schema, get_schema
from gz_experiments.shards import manifest as mf
from gz_experiments.shards.folder import (
    ShardDirLock,
    outputs_present,
    prepare_shard_dir,
    save_manifest,
    verified,
    write_outputs,
)
from gz_experiments.shards.manifest import Manifest

# Galaxies per worker task: small enough to balance the cores, large enough that inter-process
# traffic stays negligible next to decoding.
CHUNK = 32
# Below this many galaxies decoding runs in this process: a spawned worker re-imports the
# caller's main module (seconds when that imports TensorFlow), more than a small job takes.
PARALLEL_MIN = 1000


@dataclass
class FileJob:
    split: str
    name: str
    rows: pd.DataFrame  # the catalog rows planned for this file, in write order


@dataclass
class Plan:
    schema: Schema
    inputs: dict
    sources: dict
    source_rows: dict[str, int]
    splits: dict[str, pd.DataFrame] = field(default_factory=dict)
    jobs: list[FileJob] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return sum(len(df) for df in self.splits.values())


@dataclass(frozen=True)
class ShardResult:
    """What `run_shard` did: the complete manifest and how many files this call wrote."""

    manifest: Manifest
    files_written: int
    within_limit: bool  # rejected share <= max_rejected_fraction (checked after logging)
    max_rejected_fraction: float

    def check(self) -> None:
        check_rejected(self.manifest, self.max_rejected_fraction)


def check_inputs(config: ShardConfig) -> None:
    """What must be given before any work starts."""
    if not config.shard_dir:
        raise UserError("no shard folder: pass --shard-dir (mlflow run: -P shard_dir=...)")
    if not config.catalog and not config.unlabelled_catalog:
        raise UserError("nothing to shard: pass --catalog and/or --unlabelled-catalog")
    for path in (config.catalog, config.unlabelled_catalog):
        if path and not Path(path).is_file():
            raise UserError(f"{path}: catalog not found")


def run_shard(
    config: ShardConfig, *, progress: bool | None = None, run_id: str = ""
) -> ShardResult:
    """Write (or resume, or leave as is) the shards of `config`.

    `run_id` names the MLflow run doing it, recorded in the manifest when this call writes
    files (or none is recorded yet). Too many rejected images is not raised here: the caller
    logs the rejects first, then calls `result.check()`.
    """
    check_inputs(config)
    shard_dir = Path(config.shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    with ShardDirLock(shard_dir):
        plan = plan_shards(config)
        existing = prepare_shard_dir(shard_dir, plan.inputs, config.overwrite)
        data = _skeleton(plan, config, existing)
        pending = [job for job in plan.jobs if not verified(shard_dir, data, job.split, job.name)]
        if existing is not None and existing.complete and not pending and outputs_present(existing):
            manifest, written = existing, 0  # nothing to do: leave every file (and mtime) alone
        else:
            _check_missing_early(plan, config)
            written = _write_jobs(shard_dir, data, pending, config, _show_progress(progress))
            _count_filled(data)
            manifest = write_outputs(shard_dir, data, plan.splits)
        if run_id and (written or not manifest.shard_run_id):
            manifest = save_manifest(shard_dir, {**manifest.data, "shard_run_id": run_id})
    return ShardResult(
        manifest,
        written,
        within_limit=_within_limit(manifest, config.max_rejected_fraction),
        max_rejected_fraction=config.max_rejected_fraction,
    )


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() != "true"


# ---- planning ------------------------------------------------------------------------------


def plan_shards(config: ShardConfig) -> Plan:
    """Load, cap and split the catalogs and assign every galaxy to a file; no images read."""
    schema = get_schema(config.schema)
    inputs = {
        "format_version": mf.FORMAT_VERSION,
        "schema": schema.to_dict(),
        "img_size": config.img_size,
        "greyscale": config.greyscale,
        "encoding": config.encoding,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction,
        "shard_size": config.shard_size,
        "seed": config.seed,
        "max_labelled": config.max_labelled,
        "max_unlabelled": config.max_unlabelled,
        "fill_missing_votes": config.fill_missing_votes,
        "missing_questions": config.missing_questions,
        "class_column": config.class_column,
        "fractional_votes": config.fractional_votes,
        "max_image_pixels": config.max_image_pixels,
        "catalog_sha256": file_sha256(config.catalog) if config.catalog else "",
        "unlabelled_catalog_sha256": (
            file_sha256(config.unlabelled_catalog) if config.unlabelled_catalog else ""
        ),
    }
    sources = {"catalog": config.catalog, "unlabelled_catalog": config.unlabelled_catalog}
    plan = Plan(schema, inputs, sources, source_rows={})
    if config.catalog:
        labelled = _load(config, schema, config.catalog, labelled=True)
        plan.source_rows["labelled"] = len(labelled)
        labelled = _cap(labelled, config.max_labelled, np.random.default_rng(config.seed))
        plan.splits.update(
            split_catalog(
                labelled, config.val_fraction, config.test_fraction, config.seed, config.catalog
            )
        )
    if config.unlabelled_catalog:
        unlabelled = _load(config, schema, config.unlabelled_catalog, labelled=False)
        plan.source_rows["unlabelled"] = len(unlabelled)
        # Kept in the catalog's order (no shuffle): predictions come back in the user's order.
        plan.splits["predict"] = _cap(unlabelled, config.max_unlabelled, None)
    for split, df in plan.splits.items():
        plan.jobs.extend(_file_jobs(split, df, config.shard_size))
    if any(is_fits(p) for df in plan.splits.values() for p in df[FILE_COL]):
        # Only then: FITS settings change no PNG, so PNG-only shards keep their inputs.
        inputs["fits"] = config.fits_settings().to_dict()
    return plan


def _load(config: ShardConfig, schema: Schema, path: str, labelled: bool) -> pd.DataFrame:
    # check_files=False: a missing image becomes a rejected galaxy, not a catalog error.
    return load_catalog(
        path,
        schema,
        labelled=labelled,
        fill_missing_votes=config.fill_missing_votes,
        missing_questions=config.missing_questions,
        class_column=config.class_column,
        fractional_votes=config.fractional_votes,
        check_files=False,
    )


def _cap(df: pd.DataFrame, cap: int, rng: np.random.Generator | None) -> pd.DataFrame:
    if not cap or cap >= len(df):
        return df
    rows = np.sort(rng.permutation(len(df))[:cap]) if rng is not None else np.arange(cap)
    return df.iloc[rows].reset_index(drop=True)


def _file_jobs(split: str, df: pd.DataFrame, shard_size: int) -> list[FileJob]:
    n_files = math.ceil(len(df) / shard_size)
    return [
        FileJob(split, f"{split}_{i:05d}.tfrecord", df.iloc[i * shard_size : (i + 1) * shard_size])
        for i in range(n_files)
    ]


def _skeleton(plan: Plan, config: ShardConfig, existing: Manifest | None) -> dict:
    """The manifest to fill in, keeping file records from a compatible earlier run."""
    old_files = {}
    if existing is not None:
        for split in existing.data["splits"].values():
            old_files.update({f["name"]: f for f in split["files"]})
    splits = {}
    for split, df in plan.splits.items():
        jobs = [j for j in plan.jobs if j.split == split]
        files = [
            old_files.get(j.name) or {"name": j.name, "n_rows": len(j.rows), "sha256": None}
            for j in jobs
        ]
        splits[split] = {"n_rows": len(df), "catalog": mf.catalog_name(split), "files": files}
    schema = plan.schema
    data = {
        "format_version": mf.FORMAT_VERSION,
        "complete": False,
        "shard_run_id": existing.data.get("shard_run_id") if existing is not None else None,
        "inputs": plan.inputs,
        "sources": plan.sources,
        "schema_name": schema.name,
        "schema": schema.to_dict(),
        "label_cols": schema.label_cols,
        "img_size": config.img_size,
        "channels": 1 if config.greyscale else 3,
        "encoding": config.encoding,
        "seed": config.seed,
        "splits": splits,
        "counts": {"source_rows": plan.source_rows, "catalog_rows": plan.n_rows},
    }
    if "fits" in plan.inputs:
        data["fits"] = plan.inputs["fits"]
    return data


def _check_missing_early(plan: Plan, config: ShardConfig) -> None:
    """Fail before hours of decoding when missing files alone exceed max_rejected_fraction."""
    paths = pd.concat([df[FILE_COL] for df in plan.splits.values()], ignore_index=True)
    missing = paths[[not Path(p).is_file() for p in paths]]
    allowed = math.floor(config.max_rejected_fraction * len(paths) + 1e-9)
    if len(missing) > allowed:
        raise UserError(
            f"{len(missing)} of {len(paths)} image files are missing (first: {missing.iloc[0]}), "
            f"more than --max-rejected-fraction {config.max_rejected_fraction} allows; fix "
            f"file_loc in {config.catalog or config.unlabelled_catalog} or raise the fraction"
        )


# ---- writing ------------------------------------------------------------------------------


Decoded = tuple[bytes | None, str, int]  # (encoded or None, reason if None, pixels filled)


def decode_chunk(task: tuple[list[str], int, bool, str, int, FitsSettings]) -> list[Decoded]:
    """Worker: (paths, size, greyscale, encoding, max pixels, FITS settings) -> Decoded each."""
    paths, img_size, greyscale, encoding, max_pixels, fits = task
    out = []
    for path in paths:
        try:
            pixels, filled = decode_image_and_count_filled(
                path, img_size, greyscale, max_pixels, fits
            )
        except Exception as exc:  # any decode failure is a bad image to report, not a crash
            out.append((None, getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}", 0))
            continue
        out.append((encode_png(pixels) if encoding == "png" else pixels.tobytes(), "", filled))
    return out


def _tasks(jobs: list[FileJob], config: ShardConfig) -> Iterator[tuple]:
    fits = config.fits_settings()  # used by FITS files only; the plan recorded it if any
    for job in jobs:
        paths = job.rows[FILE_COL].tolist()
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            yield (
                chunk,
                config.img_size,
                config.greyscale,
                config.encoding,
                config.max_image_pixels,
                fits,
            )


def _results(jobs: list[FileJob], config: ShardConfig) -> Iterator[list[Decoded]]:
    """Decoded chunks in order; parallel over all cores unless the job is tiny."""
    workers = config.n_workers or len(os.sched_getaffinity(0))
    n_rows = sum(len(j.rows) for j in jobs)
    if workers <= 1 or n_rows < PARALLEL_MIN:
        yield from map(decode_chunk, _tasks(jobs, config))
        return
    # spawn, not fork: the caller may already run TensorFlow threads, which fork would copy.
    # An executor (not a Pool) fails loudly if a worker dies instead of waiting forever.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent) as pool:
        yield from pool.map(decode_chunk, _tasks(jobs, config))


def _write_jobs(shard_dir: Path, data: dict, jobs: list[FileJob], config, progress: bool) -> int:
    from tqdm.auto import tqdm

    if not jobs:
        return 0
    save_manifest(shard_dir, data)  # from now on the folder says which inputs it belongs to
    results = _results(jobs, config)
    total = sum(len(j.rows) for j in jobs)
    with tqdm(
        total=total, unit="galaxy", desc="sharding", disable=not show_progress(progress)
    ) as bar:
        for job in jobs:
            with TFRecordFile(shard_dir / job.name) as out:
                rejected, filled = _write_file(out, job, results, data["label_cols"], bar)
            _record_file(shard_dir, data, job, out, rejected, filled)
    return len(jobs)


def _write_file(
    out: TFRecordFile, job: FileJob, results: Iterator, label_cols, bar
) -> tuple[list[dict], dict[str, int]]:
    """Consume this file's decoded chunks: (rejected galaxies with their reasons, {id: pixels
    filled} of the written galaxies with NaN/inf/blank pixels)."""
    ids = job.rows[ID_COL].tolist()
    labelled = job.split != "predict"
    counts = job.rows[label_cols].to_numpy(np.float32) if labelled else [None] * len(ids)
    rejected, filled = [], {}
    for start in range(0, len(ids), CHUNK):
        for i, (encoded, reason, n_filled) in enumerate(next(results), start):
            if encoded is None:
                rejected.append({"id_str": ids[i], "reason": reason})
            else:
                out.write(encoded, ids[i], counts[i])
                if n_filled:
                    filled[ids[i]] = n_filled
        bar.update(min(CHUNK, len(ids) - start))
    return rejected, filled


def _record_file(
    shard_dir: Path, data: dict, job: FileJob, out, rejected: list[dict], filled: dict[str, int]
) -> None:
    files = data["splits"][job.split]["files"]
    index = next(i for i, f in enumerate(files) if f["name"] == job.name)
    files[index] = {
        "name": job.name,
        "n_rows": len(job.rows),
        "n_galaxies": out.n_written,
        "sha256": out.sha256,
        "rejected": rejected,
    }
    if "fits" in data:
        files[index]["filled_pixels"] = filled
    save_manifest(shard_dir, data)  # progress survives a crash: resume skips this file


def _count_filled(data: dict) -> None:
    """Galaxies written with filled NaN/inf/blank pixels, over every file (resumed ones too)."""
    if "fits" not in data:
        return
    files = [f for split in data["splits"].values() for f in split["files"]]
    data["counts"]["fits_filled_images"] = sum(len(f["filled_pixels"]) for f in files)
    data["counts"]["fits_filled_pixels"] = sum(sum(f["filled_pixels"].values()) for f in files)


def _within_limit(manifest: Manifest, max_fraction: float) -> bool:
    total, rejected = manifest.counts["catalog_rows"], manifest.counts["rejected"]
    return not (total and rejected / total > max_fraction + 1e-12)


def check_rejected(manifest: Manifest, max_fraction: float) -> None:
    counts = manifest.counts
    total, rejected = counts["catalog_rows"], counts["rejected"]
    if not _within_limit(manifest, max_fraction):
        raise UserError(
            f"{rejected} of {total} galaxies rejected ({rejected / total:.2%}), more than "
            f"--max-rejected-fraction {max_fraction}; see {manifest.rejected_path} for each "
            f"galaxy and reason, fix or drop those rows, or raise the fraction (the shards are "
            f"kept: a re-run with the same inputs is immediate)"
        )


class TFRecordFile:
    """Writes tf.train.Examples to `<name>.tmp`, renamed into place only when complete."""

    def __init__(self, path: Path):
        import tensorflow as tf  # here, not at import: decode workers must not load TensorFlow

        self.tf, self.path, self.tmp = tf, path, path.with_name(path.name + ".tmp")
        self.n_written, self.sha256 = 0, ""

    def __enter__(self) -> TFRecordFile:
        self.writer = self.tf.io.TFRecordWriter(str(self.tmp))
        return self

    def write(self, encoded: bytes, id_str: str, counts: np.ndarray | None) -> None:
        train = self.tf.train
        feature = {
            mf.IMAGE_KEY: train.Feature(bytes_list=train.BytesList(value=[encoded])),
            mf.ID_KEY: train.Feature(bytes_list=train.BytesList(value=[str(id_str).encode()])),
        }
        if counts is not None:
            feature[mf.COUNTS_KEY] = train.Feature(float_list=train.FloatList(value=counts))
        example = train.Example(features=train.Features(feature=feature))
        # deterministic: map fields (the feature dict) in key order, so the bytes, and the
        # manifest's sha256, are the same in every process (protobuf's map order is not)
        self.writer.write(example.SerializeToString(deterministic=True))
        self.n_written += 1

    def __exit__(self, exc_type, *exc) -> None:
        self.writer.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.path)
        self.sha256 = file_sha256(self.path)
