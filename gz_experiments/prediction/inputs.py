"""What to predict on, as batches of decoded images: folders, catalogs, shards, lists, DataFrames.

Images (PNG, JPEG, FITS) are decoded with `images.load_image` at the model's stored size and
channels and, for FITS, with the FITS settings of its spec, exactly as at shard time, in a few
threads, one batch ahead of the model; only two batches are ever in memory. A galaxy whose image cannot be read becomes a `(id_str, source, reason)` entry of its
batch's `skipped` list instead of stopping the run.

Reading files named by the input (`file_loc`) is governed by a `FileAccess`: batch prediction
reads any path; a served model reads none unless its operator allowed folders. A file is opened
once and read from that descriptor (images.files: regular files only, never blocking, its real
path checked against the folders). Under allowed folders every unread path (outside, missing,
not a regular file, a NUL byte) gets the same reason, so a client cannot probe which files
exist.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gz_experiments.catalog import FILE_COL, ID_COL, load_catalog
from gz_experiments.errors import UserError
from gz_experiments.images import FitsSettings, ImageError, image_id, image_suffix, load_image
from gz_experiments.images.decode import check_name_matches
from gz_experiments.images.files import FileRefused, read_regular
from gz_experiments.images.formats import ACCEPTED
from gz_experiments.images.raster import DEFAULT_MAX_PIXELS
from gz_experiments.model_spec import ModelSpec
from gz_experiments.shards.manifest import MANIFEST_NAME, check_compatible, load_manifest

IMAGE_COL = "image"
CATALOG_SUFFIXES = (".csv", ".parquet", ".pq")
SHOWN = 10  # how many offending files an error message lists
NOT_UTF8 = "the file name is not valid UTF-8, so its id cannot be written to the outputs; rename it"


REFUSED_PATH = (
    "this server reads no such file (only regular image files inside the folders its operator "
    "allowed, none by default): send the image itself in the 'image' column (base64 "
    "PNG/JPEG/FITS)"
)


@dataclass(frozen=True)
class FileAccess:
    """Which image paths may be read: all (`roots=None`), none (`()`), or those really inside
    the given folders (resolved), each at most `max_bytes` (None: any size)."""

    roots: tuple[Path, ...] | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int | None = None

    def read(self, path: str) -> bytes:
        """The file's bytes; ImageError with the one refusal reason when folders are set."""
        try:
            data = read_regular(path, self.roots, self.max_bytes)
        except FileRefused as exc:
            raise ImageError(path, exc.reason if self.roots is None else REFUSED_PATH) from None
        check_name_matches(path, data)
        return data


@dataclass
class Batch:
    ids: list[str]
    images: np.ndarray | None  # (B, S, S, C) float32 in [0, 1]; None when all were skipped
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (id_str, source, reason)


@dataclass(frozen=True)
class Item:
    id_str: str
    source: str | bytes | None  # a path, image bytes, a base64 string, or None (nothing given)
    where: str  # shown in the skipped list: the path, or "row i"
    base64: bool = False  # `source` is a base64 string from an `image` column
    problem: str = ""  # why it is skipped before reading it ("" for none)


class FileInputs:
    """Galaxies given one by one (paths, bytes, base64): decoded here, in threads."""

    def __init__(self, items: list[Item], spec: ModelSpec, access: FileAccess):
        self.items, self.spec, self.total, self.access = items, spec, len(items), access

    def batches(self, batch_size: int) -> Iterator[Batch]:
        spec = self.spec
        load = partial(
            _load, size=spec.img_size, greyscale=spec.greyscale, access=self.access, fits=spec.fits
        )
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            pending = None
            for start in range(0, self.total, batch_size):
                chunk = self.items[start : start + batch_size]
                # map() submits the whole chunk now: it decodes while the model runs the last one.
                loaded = pool.map(load, chunk)
                if pending is not None:
                    yield _collect(*pending)
                pending = (chunk, loaded)
            if pending is not None:
                yield _collect(*pending)


class ShardInputs:
    """A split of a shard folder: images already decoded and stored at the model's size."""

    def __init__(self, shard_dir: Path, spec: ModelSpec, split: str):
        self.manifest = load_manifest(shard_dir)
        self.spec = spec
        self.split = split or ("predict" if "predict" in self.manifest.split_names else "test")
        if self.split not in self.manifest.split_names:
            raise UserError(
                f"{shard_dir}: no split {self.split!r}; it has {list(self.manifest.split_names)}"
            )
        check_compatible(self.manifest, spec, labels=False)
        self.total = self.manifest.n_galaxies(self.split)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        from gz_experiments.shards.dataset import make_dataset

        dataset = make_dataset(
            self.manifest,
            self.split,
            batch_size=batch_size,
            training=False,
            greyscale=self.spec.greyscale,
            with_ids=True,
        )
        for element in dataset:
            # (images, counts, ids) for labelled splits, (images, ids) for "predict"
            images, ids = element[0], element[-1]
            yield Batch([i.decode() for i in ids.numpy()], images.numpy())


def check_model_and_input(model_uri: str, source: str, purpose: str, local: bool = True) -> None:
    """What every step that runs a model over images needs, checked before opening a run or
    loading TensorFlow: a model, and an input that exists (`local=False`: a URI Spark reads)."""
    if not model_uri:
        raise UserError(
            "no model given: pass model_uri=models:/<name>@<alias>, models:/<name>/<version>, "
            "runs:/<run_id>/model or a local model folder"
        )
    if not source:
        raise UserError(
            f"no input given: pass input=<folder of images | catalog.csv/.parquet with "
            f"file_loc | shard folder> holding the galaxies to {purpose}"
        )
    if local and not Path(source).exists():
        raise UserError(f"{source}: no such file or folder to {purpose}")


def resolve_inputs(
    source: Any, spec: ModelSpec, split: str = "", access: FileAccess | None = None
) -> FileInputs | ShardInputs:
    """Inputs for any accepted source (see gz_experiments.prediction); empty is a UserError.

    `source`: a folder of images (recursive; hidden files ignored; any other file is an error
    that lists them), a catalog (.csv/.parquet with `file_loc`, optional `id_str`), a shard
    folder (manifest.json), one image, a list of paths or image bytes, or a DataFrame with
    `file_loc` and/or `image` (bytes or base64).
    """
    access = access or FileAccess()
    if isinstance(source, pd.DataFrame):
        inputs = FileInputs(_frame_items(source), spec, access)
    elif isinstance(source, list | tuple):
        inputs = FileInputs(_list_items(source), spec, access)
    else:
        inputs = _path_inputs(Path(source), spec, split, access)
    if inputs.total == 0:
        raise UserError(f"no galaxies to predict on in {_describe(source)}")
    return inputs


def _path_inputs(path: Path, spec: ModelSpec, split: str, access) -> FileInputs | ShardInputs:
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return ShardInputs(path, spec, split)
        return FileInputs(_folder_items(path), spec, access)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder to predict on")
    suffix = path.suffix.lower()
    if suffix in CATALOG_SUFFIXES:
        catalog = load_catalog(path, spec.schema, labelled=False, check_files=False)
        return FileInputs(_frame_items(catalog), spec, access)
    if image_suffix(path):
        return FileInputs([Item(image_id(path.name), str(path), str(path))], spec, access)
    raise UserError(
        f"{path}: cannot predict on a {suffix or 'suffix-less'} file; give a folder of "
        f"{ACCEPTED} images, a .csv/.parquet catalog with {FILE_COL}, or a shard folder"
    )


def _folder_items(folder: Path) -> list[Item]:
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )  # fmt: skip
    unsupported = [p for p in files if not image_suffix(p)]
    if unsupported:
        listed = ", ".join(str(p.relative_to(folder)) for p in unsupported[:SHOWN])
        more = f" and {len(unsupported) - SHOWN} more" if len(unsupported) > SHOWN else ""
        catalogs = [p for p in unsupported if p.suffix.lower() in CATALOG_SUFFIXES]
        hint = f" (for the catalog instead, pass input={catalogs[0]})" if catalogs else ""
        raise UserError(
            f"{folder}: {len(unsupported)} file(s) are not {ACCEPTED} images: "
            f"{listed}{more}; move them out or convert them{hint}"
        )
    # The id drops the whole suffix: "J0001.fits.fz" is "J0001", as its PNG would be.
    items = [_folder_item(folder, p) for p in files]
    counts = Counter(item.id_str for item in items)
    clashes = [item.where for item in items if counts[item.id_str] > 1]
    if clashes:
        raise UserError(
            f"{folder}: {len(clashes)} images share an id with another ({', '.join(clashes[:4])}): "
            f"an image's id is its path without the suffix, so rename or move one of each"
        )
    return items


def _folder_item(folder: Path, path: Path) -> Item:
    """An image of a folder; a name that is not UTF-8 (bytes the file system allows) is skipped
    with a reason and shown with those bytes escaped, so the outputs stay writable."""
    relative = path.relative_to(folder)
    try:
        str(relative).encode()
    except UnicodeEncodeError:
        shown = os.fsencode(relative).decode(errors="backslashreplace")
        return Item(image_id(shown), None, str(folder / shown), problem=NOT_UTF8)
    return Item(image_id(relative), str(path), str(path))


def _list_items(sources: list | tuple) -> list[Item]:
    items = []
    for i, source in enumerate(sources):
        if isinstance(source, bytes | bytearray):
            items.append(Item(str(i), bytes(source), f"item {i}"))
        else:
            items.append(Item(image_id(Path(source).name), str(source), str(source)))
    return items


def _frame_items(frame: pd.DataFrame) -> list[Item]:
    if FILE_COL not in frame.columns and IMAGE_COL not in frame.columns:
        raise UserError(
            f"input table needs a '{FILE_COL}' (image paths) or '{IMAGE_COL}' (PNG/JPEG/FITS bytes "
            f"or base64) column; found {list(frame.columns)[:12]}"
        )
    n = len(frame)
    ids = (
        frame[ID_COL].astype(str).tolist() if ID_COL in frame.columns else list(map(str, range(n)))
    )
    images = frame[IMAGE_COL].tolist() if IMAGE_COL in frame.columns else [None] * n
    paths = frame[FILE_COL].tolist() if FILE_COL in frame.columns else [None] * n
    items = []
    for row, (id_str, image, path) in enumerate(zip(ids, images, paths, strict=True)):
        if _present(image):
            items.append(Item(id_str, image, f"row {row} ({IMAGE_COL})", isinstance(image, str)))
        elif _present(path):
            items.append(Item(id_str, str(path), str(path)))
        else:
            items.append(Item(id_str, None, f"row {row}"))
    return items


def _present(value: Any) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return not (isinstance(value, str) and not value.strip())


def _load(
    item: Item, size: int, greyscale: bool, access: FileAccess, fits: FitsSettings | None = None
) -> np.ndarray | str:
    """The image, or the reason it cannot be used (FITS bytes are told by their content)."""
    if item.problem:
        return item.problem
    if item.source is None:
        return f"neither {FILE_COL} nor {IMAGE_COL} is given"
    source = item.source
    if item.base64:
        # a `data:image/png;base64,` prefix (as browsers write it) is allowed
        text = source.split(",", 1)[1] if source.startswith("data:") else source
        try:
            source = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return f"the {IMAGE_COL} string is not valid base64"
    try:
        if isinstance(source, str):
            source = access.read(source)
        return load_image(source, size, greyscale, access.max_pixels, fits)
    except ImageError as exc:
        return exc.reason
    except Exception as exc:  # e.g. Pillow's DecompressionBombError: one file must not stop a run
        return f"{type(exc).__name__}: {exc}"


def _collect(chunk: list[Item], loaded: Iterator[np.ndarray | str]) -> Batch:
    ids, images, skipped = [], [], []
    for item, result in zip(chunk, loaded, strict=True):
        if isinstance(result, str):
            skipped.append((item.id_str, item.where, result))
        else:
            ids.append(item.id_str)
            images.append(result)
    return Batch(ids, np.stack(images) if images else None, skipped)


def _describe(source: Any) -> str:
    if isinstance(source, pd.DataFrame):
        return "the input table"
    if isinstance(source, list | tuple):
        return "the input list"
    return str(source)
