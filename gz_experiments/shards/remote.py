"""Shard folders on object storage (`s3://`, `gs://`, any fsspec URL): copied once into a local
cache, each file checked against the sha256 its manifest records, then read as a local folder.

    local = local_shards("s3://bucket/gz/shards-128")   # <cache>/remote-shards/<key>/
    load_manifest("s3://bucket/gz/shards-128")          # the same, for train/finetune/evaluate

Why a copy and not streaming: training reads every shard once per epoch, so one download per
machine is the cheapest read, and TensorFlow 2.21's tf.io.gfile has no S3 file system of its own
(GCS only; tensorflow-io, which added S3, is not released for TF 2.21). fsspec reaches every
store through one API: `s3fs` (the [s3] extra) for S3 and S3-compatible stores, `gcsfs` ([gcs])
for Google Cloud Storage. Credentials and endpoints are the stores' own (AWS_* variables or
~/.aws, AWS_ENDPOINT_URL for an S3-compatible server; GOOGLE_APPLICATION_CREDENTIALS).

The cache key is the URL plus the manifest's bytes: a re-sharded folder at the same URL gets a
new copy. A file is moved into place only after its hash matched, so an interrupted copy resumes
with the files it lacks, and processes copying at once do not clash; manifest.json is written
last, so a half-copied folder is never read.
Cache root: $GZ_CACHE_DIR, else ~/.cache/gz_experiments (as the simulated datasets).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from gz_experiments.catalog import file_sha256
from gz_experiments.errors import UserError
from gz_experiments.shards.names import MANIFEST_NAME, REJECTED_NAME

CACHE_FOLDER = "remote-shards"
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def is_remote(text: str | Path) -> bool:
    """A URL with a scheme (s3://, gs://, hdfs://, file://): not a plain local path."""
    return re.match(r"^[A-Za-z][\w+.-]*://", str(text)) is not None


def local_shards(url: str) -> Path:
    """The local copy of the shard folder at `url` (fetched and verified where missing)."""
    from gz_experiments.simulate.dataset import cache_dir  # the one cache root, not its imports

    fs, root = _filesystem(url)
    root = root.rstrip("/")
    manifest_bytes = _read(fs, f"{root}/{MANIFEST_NAME}", url)
    key = hashlib.sha256(url.encode() + b"\0" + manifest_bytes).hexdigest()[:16]
    local = cache_dir() / CACHE_FOLDER / key
    if (local / MANIFEST_NAME).is_file():
        return local
    local.mkdir(parents=True, exist_ok=True)
    for name, sha256 in _listed_files(manifest_bytes, url):
        if not (local / name).is_file():
            _fetch(fs, f"{root}/{name}", local / name, sha256, url)
    if fs.exists(f"{root}/{REJECTED_NAME}") and not (local / REJECTED_NAME).is_file():
        _fetch(fs, f"{root}/{REJECTED_NAME}", local / REJECTED_NAME, None, url)
    _write_atomically(local / MANIFEST_NAME, manifest_bytes)
    return local


def _filesystem(url: str):
    import fsspec

    scheme = url.split("://", 1)[0].lower()
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError:
        extra = EXTRAS.get(scheme)
        how = f"pip install 'gz-experiments[{extra}]'" if extra else "install its fsspec driver"
        raise UserError(f"{url}: reading {scheme}:// needs its fsspec driver: {how}") from None
    except ValueError:
        raise UserError(f"{url}: fsspec knows no storage {scheme}://") from None


def _read(fs, path: str, url: str) -> bytes:
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise UserError(
            f"{url}: no {MANIFEST_NAME} there; upload the whole shard folder (manifest and "
            f"files) or write shards first"
        ) from None
    except Exception as exc:  # the store's own errors: credentials, endpoint, permissions
        raise UserError(f"{url}: cannot read {MANIFEST_NAME}: {_one_line(exc)}") from None


def _listed_files(manifest_bytes: bytes, url: str) -> list[tuple[str, str | None]]:
    """(name, sha256 or None) of every file a manifest names: TFRecords and split catalogs."""
    try:
        splits = json.loads(manifest_bytes)["splits"].values()
        files = [(f["name"], f["sha256"]) for split in splits for f in split["files"]]
        return files + [(split["catalog"], None) for split in splits]
    except (ValueError, KeyError, TypeError, AttributeError):  # ValueError: not JSON
        raise UserError(f"{url}/{MANIFEST_NAME}: not a shard manifest; re-shard") from None


def _fetch(fs, path: str, target: Path, sha256: str | None, url: str) -> None:
    partial = _partial(target)
    try:
        fs.get_file(path, str(partial))
    except FileNotFoundError:
        raise UserError(f"{url}: {target.name} is named in {MANIFEST_NAME} but missing") from None
    if sha256 is not None and file_sha256(partial) != sha256:
        partial.unlink()
        raise UserError(
            f"{url}/{target.name}: its sha256 differs from {MANIFEST_NAME}: the upload is "
            f"incomplete or was altered; upload the shard folder again"
        )
    partial.replace(target)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = _partial(path)
    partial.write_bytes(data)
    partial.replace(path)


def _partial(target: Path) -> Path:
    """A name of this process's own beside `target`: workers started together on one machine
    (tune's n_workers, several training workers) copy the same folder at once, and each file
    lands by an atomic rename of identical, verified bytes."""
    return target.with_name(f"{target.name}.{os.getpid()}.partial")


def _one_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
