"""`manifest.json`: the one place that says what a shard folder holds (read-only here; written by
`shards.writer`).

Reading code finds shards through the manifest, never by listing the folder. The manifest records
the schema (full tree), label columns, image size, channels and encoding, per-split and per-file
galaxy counts, each file's sha256, the split seed, the source catalogs' hashes, the counts that
reconcile (written + rejected = selected catalog rows) and the MLflow run that wrote it. When
the catalogs named FITS files it also records the FitsSettings that stretched their flux (`fits`),
which training copies into the model's spec.

No TensorFlow here: prediction and evaluation read manifests without building a pipeline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gz_experiments.errors import UserError
from gz_experiments.images.fits.stretch import FitsSettings
from gz_experiments.model_spec import ModelSpec
from gz_experiments.schema import Schema
from gz_experiments.shards.names import MANIFEST_NAME, REJECTED_NAME

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test", "predict")
# tf.train.Example features: encoded image bytes, the galaxy id, and (labelled splits only) the
# vote counts as one float vector in label_cols order.
IMAGE_KEY, ID_KEY, COUNTS_KEY = "image", "id_str", "counts"


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

    def __init__(self, path: str | Path, data: dict[str, Any], origin: str = ""):
        self.path = Path(path)
        self.data = data
        self._origin = origin

    @property
    def origin(self) -> str:
        """Where the shards were given: the object-store URL of a local copy, else the folder."""
        return self._origin or str(self.shard_dir)

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
    def fits(self) -> FitsSettings | None:
        """How FITS flux became these pixels; None when the catalogs named no FITS file."""
        data = self.data.get("fits")
        return FitsSettings.from_dict(data) if data else None

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

    def votes(self, split: str) -> np.ndarray:
        """Vote counts of a split's galaxies (galaxies, answers), in shard order."""
        table = pd.read_parquet(self.catalog_path(split), columns=self.label_cols)
        return table.to_numpy(dtype=np.float64)

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
    """The complete manifest of a shard folder (or of the manifest.json path itself); a folder
    on object storage (s3://, gs://...) is read from its verified local copy (`shards.remote`)."""
    from gz_experiments.shards.remote import is_remote, local_shards

    origin = str(shard_dir) if is_remote(shard_dir) else ""
    if origin:
        shard_dir = local_shards(origin)
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
    return Manifest(manifest.path, manifest.data, origin) if origin else manifest


def check_compatible(manifest: Manifest, spec: ModelSpec, *, labels: bool = True) -> None:
    """The one check that a model can read these shards: the same stored image size, channels
    it can use (colour shards feed a greyscale model through the band mean, as at shard time),
    the same FITS stretch when both have one and, when votes are compared (`labels`), the same
    answers in the same order."""
    problems = []
    if manifest.img_size != spec.img_size:
        problems.append(f"images are {manifest.img_size} px, the model takes {spec.img_size} px")
    if manifest.channels == 1 and spec.channels == 3:
        problems.append("images are greyscale, the model takes colour")
    if manifest.fits and spec.fits and not manifest.fits.same_pixels(spec.fits):
        problems.append("their FITS flux was stretched with other FITS settings than the model's")
    if labels and manifest.label_cols != spec.label_cols:
        problems.append(
            f"their tree {manifest.schema.name!r} ({len(manifest.label_cols)} answers) is not the "
            f"model's {spec.schema.name!r} ({len(spec.label_cols)} answers)"
        )
    if problems:
        raise UserError(
            f"{manifest.path}: these shards do not fit the model: {'; '.join(problems)}. Use the "
            f"shards the model was trained on (or shards written with the same img_size, "
            f"greyscale and schema), or predict on the catalog / image folder (resized on load)"
        )
