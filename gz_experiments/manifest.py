"""`manifest.json`: the one place that says what a shard folder holds.

Reading code finds shards through the manifest, never by listing the folder. The manifest records
the schema (full tree), label columns, image size, channels and encoding, per-split and per-file
galaxy counts, each file's sha256, the split seed, the source catalogs' hashes, the counts that
reconcile (written + rejected = selected catalog rows) and the MLflow run that wrote it.

No TensorFlow here: prediction and evaluation read manifests without building a pipeline.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gz_experiments.catalog import FILE_COL, ID_COL, file_sha256
from gz_experiments.errors import UserError
from gz_experiments.schema import Schema

MANIFEST_NAME = "manifest.json"
REJECTED_NAME = "rejected.csv"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test", "predict")
# tf.train.Example features: encoded image bytes, the galaxy id, and (labelled splits only) the
# vote counts as one float vector in label_cols order.
IMAGE_KEY, ID_KEY, COUNTS_KEY = "image", "id_str", "counts"
ENCODINGS = ("png", "raw")


def catalog_name(split: str) -> str:
    return f"catalog_{split}.parquet"


@dataclass(frozen=True)
class FileRecord:
    """One TFRecord file: its name beside the manifest, galaxies written, content hash."""

    name: str
    path: Path
    n_galaxies: int
    sha256: str


class Manifest:
    """A parsed manifest.json; `data` is the raw dict."""

    def __init__(self, path: str | Path, data: dict[str, Any]):
        self.path = Path(path)
        self.data = data
        self.files_written = 0  # set by write_shards: files (re)written by that call, not stored

    @property
    def shard_dir(self) -> Path:
        return self.path.parent

    @cached_property
    def schema(self) -> Schema:
        return Schema.from_dict(self.data["schema"], source=f"{self.path} (schema)")

    @property
    def label_cols(self) -> list[str]:
        return list(self.data["label_cols"])

    @property
    def img_size(self) -> int:
        return int(self.data["img_size"])

    @property
    def channels(self) -> int:
        return int(self.data["channels"])

    @property
    def greyscale(self) -> bool:
        return self.channels == 1

    @property
    def encoding(self) -> str:
        return str(self.data["encoding"])

    @property
    def complete(self) -> bool:
        return bool(self.data.get("complete"))

    @property
    def split_names(self) -> list[str]:
        return [s for s in SPLITS if s in self.data["splits"]]

    @property
    def splits(self) -> dict[str, list[FileRecord]]:
        return {name: self.files(name) for name in self.split_names}

    def files(self, split: str) -> list[FileRecord]:
        return [
            FileRecord(f["name"], self.shard_dir / f["name"], int(f["n_galaxies"]), f["sha256"])
            for f in self._split(split)["files"]
        ]

    def file_paths(self, split: str) -> list[str]:
        return [str(f.path) for f in self.files(split)]

    def n_galaxies(self, split: str) -> int:
        return int(self._split(split)["n_galaxies"])

    def catalog_path(self, split: str) -> Path:
        return self.shard_dir / self._split(split)["catalog"]

    @property
    def rejected_path(self) -> Path:
        return self.shard_dir / REJECTED_NAME

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.data["counts"])

    @property
    def shard_run_id(self) -> str | None:
        return self.data.get("shard_run_id") or None

    @property
    def catalog_sha256(self) -> str:
        return str(self.data["inputs"]["catalog_sha256"])

    @property
    def sha256(self) -> str:
        """Hash of the manifest's content, without the run id (recording it changes no data)."""
        content = {k: v for k, v in self.data.items() if k != "shard_run_id"}
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()

    def _split(self, split: str) -> dict[str, Any]:
        if split not in self.data["splits"]:
            raise UserError(
                f"{self.path}: no split {split!r}; it has {self.split_names}"
                + (" (shard an unlabelled catalog to get 'predict')" if split == "predict" else "")
            )
        return self.data["splits"][split]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.n_galaxies(s)}" for s in self.split_names)
        return f"Manifest({self.path}, {self.img_size}px x{self.channels} {self.encoding}, {sizes})"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def manifest_path(shard_dir: str | Path) -> Path:
    return Path(shard_dir) / MANIFEST_NAME


def read_manifest(shard_dir: str | Path) -> Manifest | None:
    """The manifest in shard_dir, complete or not, or None when there is none."""
    path = manifest_path(shard_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable manifest ({exc}); re-shard with --overwrite") from None
    if data.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path}: manifest format {data.get('format_version')!r} is not {FORMAT_VERSION}; "
            f"re-shard with --overwrite"
        )
    return Manifest(path, data)


def load_manifest(shard_dir: str | Path) -> Manifest:
    """The complete manifest of a shard folder (or of the manifest.json path itself)."""
    shard_dir = Path(shard_dir)
    if shard_dir.name == MANIFEST_NAME:
        shard_dir = shard_dir.parent
    manifest = read_manifest(shard_dir)
    if manifest is None:
        raise UserError(
            f"{shard_dir}: no {MANIFEST_NAME}; write shards first "
            f"(mlflow run . -e shard -P catalog=... -P shard_dir={shard_dir})"
        )
    if not manifest.complete:
        raise UserError(
            f"{manifest.path}: sharding did not finish; re-run the same shard command to resume"
        )
    return manifest


def save_manifest(shard_dir: str | Path, data: dict[str, Any]) -> Manifest:
    """Write atomically (temp file + rename) so a crash never leaves half a manifest."""
    path = manifest_path(shard_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return Manifest(path, data)


def record_run_id(shard_dir: str | Path, run_id: str) -> Manifest:
    """Store the MLflow run that wrote the shards (leaves the file untouched if already so)."""
    manifest = load_manifest(shard_dir)
    if manifest.data.get("shard_run_id") == run_id:
        return manifest
    return save_manifest(shard_dir, {**manifest.data, "shard_run_id": run_id})


# ---- the shard folder's state: lock, compatibility, verification, final outputs ---------------

LOCK_NAME = ".shard.lock"


class ShardDirLock:
    """An exclusive lock on a shard folder, so two runs never write the same files (POSIX)."""

    def __init__(self, shard_dir: Path):
        self.path = Path(shard_dir) / LOCK_NAME

    def __enter__(self) -> ShardDirLock:
        import fcntl

        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def prepare_shard_dir(shard_dir: Path, inputs: dict, overwrite: bool) -> Manifest | None:
    """The earlier manifest when its inputs equal `inputs`; else refuse, or clear it on overwrite."""
    try:
        existing = read_manifest(shard_dir)
    except UserError:
        if not overwrite:
            raise
        existing = None
    if existing is None:
        others = sorted(p.name for p in shard_dir.iterdir() if p.name != LOCK_NAME)
        if others and not overwrite:
            raise UserError(
                f"{shard_dir} is not empty ({', '.join(others[:3])}, ...) and has no "
                f"{MANIFEST_NAME}; choose an empty --shard-dir or pass --overwrite"
            )
        return None
    if canonical_json(existing.data["inputs"]) == canonical_json(inputs):
        return existing
    if not overwrite:
        raise UserError(
            f"{shard_dir} holds shards written with other inputs ({_differences(existing, inputs)}); "
            f"pass --overwrite to replace them, or choose another --shard-dir"
        )
    _remove_outputs(existing)
    return None


def _differences(existing: Manifest, inputs: dict) -> str:
    old = existing.data["inputs"]
    changed = sorted(k for k in set(old) | set(inputs) if old.get(k) != inputs.get(k))
    shown = [
        k if k in ("schema",) or "sha256" in k else f"{k} {old.get(k)} -> {inputs.get(k)}"
        for k in changed
    ]
    return "changed: " + ", ".join(shown)


def _remove_outputs(manifest: Manifest) -> None:
    names = [f["name"] for split in manifest.data["splits"].values() for f in split["files"]]
    names += [split["catalog"] for split in manifest.data["splits"].values()]
    names += [REJECTED_NAME, MANIFEST_NAME]
    for name in names:
        (manifest.shard_dir / name).unlink(missing_ok=True)


def verified(shard_dir: Path, data: dict, split: str, name: str) -> bool:
    """True when the manifest's record of this file is finished and the file still matches it."""
    record = next(f for f in data["splits"][split]["files"] if f["name"] == name)
    path = shard_dir / name
    return bool(record.get("sha256")) and path.is_file() and file_sha256(path) == record["sha256"]


def outputs_present(manifest: Manifest) -> bool:
    names = [manifest.catalog_path(s) for s in manifest.split_names] + [manifest.rejected_path]
    return all(p.is_file() for p in names)


def write_outputs(shard_dir: Path, data: dict, splits: dict[str, pd.DataFrame]) -> Manifest:
    """Per-split catalogs of the written galaxies, rejected.csv, reconciled counts; complete."""
    rejected = [_split_outputs(shard_dir, data["splits"][s], s, df) for s, df in splits.items()]
    table = pd.concat(rejected, ignore_index=True)
    table.to_csv(shard_dir / REJECTED_NAME, index=False)
    counts = data["counts"]
    counts["written"] = sum(data["splits"][s]["n_galaxies"] for s in splits)
    counts["rejected"] = len(table)
    if counts["written"] + counts["rejected"] != counts["catalog_rows"]:
        raise RuntimeError("bug: written + rejected differs from the catalog rows")
    data["complete"] = True
    return save_manifest(shard_dir, data)


def _split_outputs(shard_dir: Path, info: dict, split: str, df: pd.DataFrame) -> pd.DataFrame:
    """Write the split's catalog (galaxies in shard order + their file); return its rejects."""
    files = info["files"]
    shard_file = np.repeat([f["name"] for f in files], [f["n_rows"] for f in files])
    reasons = {r["id_str"]: r["reason"] for f in files for r in f["rejected"]}
    keep = ~df[ID_COL].isin(list(reasons)).to_numpy()
    written = df.loc[keep].assign(shard_file=shard_file[keep])
    _atomic_parquet(written, shard_dir / info["catalog"])
    info["n_galaxies"], info["n_rejected"] = len(written), int((~keep).sum())
    if info["n_galaxies"] != sum(f["n_galaxies"] for f in files):
        raise RuntimeError(f"bug: {split} catalog and shard counts disagree")
    rejected = df.loc[~keep, [ID_COL, FILE_COL]]
    return pd.DataFrame(
        {
            "split": split,
            ID_COL: rejected[ID_COL].to_numpy(),
            FILE_COL: rejected[FILE_COL].to_numpy(),
            "reason": [reasons[i] for i in rejected[ID_COL]],
        },
        columns=["split", ID_COL, FILE_COL, "reason"],
    )


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
