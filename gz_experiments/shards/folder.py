"""The state of a shard folder while it is written: lock, which inputs it belongs to, which files
are finished, and the final per-split catalogs + rejected.csv + complete manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gz_experiments.atomic import write_table, write_text
from gz_experiments.catalog import FILE_COL, ID_COL, file_sha256
from gz_experiments.errors import UserError
from gz_experiments.shards.manifest import (
    MANIFEST_NAME,
    REJECTED_NAME,
    Manifest,
    canonical_json,
    manifest_path,
    read_manifest,
)


def save_manifest(shard_dir: str | Path, data: dict[str, Any]) -> Manifest:
    """Write atomically (temp file + rename) so a crash never leaves half a manifest."""
    path = manifest_path(shard_dir)
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Manifest(path, data)


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
    write_table(table, shard_dir / REJECTED_NAME)
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
    write_table(written, shard_dir / info["catalog"])
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
