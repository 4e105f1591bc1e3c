"""run_shard: round trip, seeded splits, manifest, rejects, no-op re-runs, resume, overwrite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gz_experiments.catalog import file_sha256
from gz_experiments.config import ShardConfig
from gz_experiments.errors import UserError
from gz_experiments.images import load_image
from gz_experiments.schema import get_schema
from gz_experiments.shards import writer
from gz_experiments.shards.dataset import make_dataset
from gz_experiments.shards.manifest import Manifest, load_manifest
from gz_experiments.shards.writer import run_shard

from .conftest import REPO, shared_data

LABELS = get_schema("gz1").label_cols


def make_catalog(folder: Path, n: int = 30, size: int = 20, seed: int = 0, name="catalog.csv"):
    """n small random colour images (PNG, every third JPEG) + one-question gz1 vote counts."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        suffix = "jpg" if i % 3 == 2 else "png"
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"g{seed}_{i}.{suffix}")
        votes = dict(zip(LABELS, rng.integers(0, 9, len(LABELS)).astype(float), strict=True))
        rows.append({"id_str": f"g{seed}_{i}", "file_loc": f"images/g{seed}_{i}.{suffix}", **votes})
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def config_for(catalog: Path, shard_dir: Path, **overrides) -> ShardConfig:
    values = {"catalog": str(catalog), "shard_dir": str(shard_dir), "schema": "gz1"}
    values.update(img_size=16, shard_size=8, n_workers=1)
    values.update(overrides)
    return ShardConfig.resolve("debug", **values)


def shard(config: ShardConfig, **kwargs) -> Manifest:
    """Shards as the shard step writes them (too many rejects refused): the manifest."""
    result = run_shard(config, **kwargs)
    result.check()
    return result.manifest


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mtime_ns, file_sha256(p)) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_round_trip_returns_the_same_images_and_votes_in_order(tmp_path, encoding):
    catalog = make_catalog(tmp_path)
    config = config_for(catalog, tmp_path / "shards", encoding=encoding, greyscale=False)
    manifest = shard(config)
    source = pd.read_csv(catalog, dtype={"id_str": str}).set_index("id_str")
    for split in ("train", "val", "test"):
        ds = make_dataset(manifest, split, batch_size=4, training=False, with_ids=True)
        images, counts, ids = (
            np.concatenate(parts) for parts in zip(*ds.as_numpy_iterator(), strict=True)
        )
        ids = [i.decode() for i in ids]
        assert ids == pd.read_parquet(manifest.catalog_path(split))["id_str"].tolist()
        np.testing.assert_array_equal(counts, source.loc[ids, LABELS].to_numpy(np.float32))
        expected = [load_image(tmp_path / source.loc[i, "file_loc"], 16, False) for i in ids]
        np.testing.assert_array_equal(images, np.stack(expected))  # both encodings are lossless


def test_manifest_describes_the_shards(tmp_path):
    catalog = make_catalog(tmp_path)
    manifest = shard(config_for(catalog, tmp_path / "shards"))
    assert [manifest.n_galaxies(s) for s in ("train", "val", "test")] == [21, 3, 6]
    assert manifest.split_names == ["train", "val", "test"]
    assert manifest.schema == get_schema("gz1") and manifest.label_cols == LABELS
    assert (manifest.img_size, manifest.channels, manifest.greyscale) == (16, 1, True)
    assert manifest.encoding == "raw" and manifest.catalog_sha256 == file_sha256(catalog)
    assert manifest.counts["written"] == 30 and manifest.counts["rejected"] == 0
    train = manifest.splits["train"]
    assert [f.n_galaxies for f in train] == [8, 8, 5]
    assert all(f.sha256 == file_sha256(f.path) for files in manifest.splits.values() for f in files)
    assert load_manifest(manifest.path).sha256 == manifest.sha256


def test_splits_are_seeded_disjoint_and_complete(tmp_path):
    catalog = make_catalog(tmp_path)
    ids = {}
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        manifest = shard(config_for(catalog, tmp_path / name, seed=seed))
        ids[name] = {
            s: pd.read_parquet(manifest.catalog_path(s))["id_str"].tolist()
            for s in manifest.split_names
        }
    assert ids["a"] == ids["b"] and ids["a"] != ids["c"]
    together = sum(ids["a"].values(), [])
    assert sorted(together) == sorted(f"g0_{i}" for i in range(30))


def test_second_run_is_a_no_op_and_changed_inputs_need_overwrite(tmp_path):
    catalog = make_catalog(tmp_path)
    shard_dir = tmp_path / "shards"
    first = shard(config_for(catalog, shard_dir))
    before = _snapshot(shard_dir)
    again = run_shard(config_for(catalog, shard_dir))
    assert again.files_written == 0 and _snapshot(shard_dir) == before
    with pytest.raises(UserError, match="img_size 16 -> 12.*--overwrite"):
        shard(config_for(catalog, shard_dir, img_size=12))
    assert _snapshot(shard_dir) == before
    replaced = shard(config_for(catalog, shard_dir, img_size=12, overwrite=True))
    assert replaced.img_size == 12 and replaced.sha256 != first.sha256


def test_an_interrupted_or_damaged_run_resumes_only_the_missing_files(tmp_path):
    catalog = make_catalog(tmp_path)
    shard_dir = tmp_path / "shards"
    manifest = shard(config_for(catalog, shard_dir))
    damaged, removed = manifest.splits["train"][0].path, manifest.splits["test"][0].path
    damaged.write_bytes(b"garbage")
    removed.unlink()
    before = _snapshot(shard_dir)
    resumed = run_shard(config_for(catalog, shard_dir))
    after = _snapshot(shard_dir)
    assert resumed.files_written == 2 and resumed.manifest.sha256 == manifest.sha256
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed == {damaged.name, removed.name, "manifest.json", "rejected.csv"} | {
        f"catalog_{s}.parquet" for s in ("train", "val", "test")
    }


def test_a_folder_with_foreign_files_and_no_manifest_is_refused(tmp_path):
    catalog = make_catalog(tmp_path, n=6)
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    (shard_dir / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty.*--overwrite"):
        shard(config_for(catalog, shard_dir))


def _break_images(folder: Path, catalog: Path) -> dict[str, str]:
    df = pd.read_csv(catalog, dtype={"id_str": str})
    images = folder / "images"
    (images / "g0_0.png").unlink()
    data = (images / "g0_1.png").read_bytes()
    (images / "g0_1.png").write_bytes(data[: len(data) // 2])
    (images / "g0_3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    Image.new("CMYK", (8, 8)).save(images / "g0_4.png", format="JPEG")
    df.loc[df["id_str"] == "g0_6", "file_loc"] = "images/g0_6.gif"
    Image.new("RGB", (8, 8)).save(images / "g0_6.gif")
    # an id a spreadsheet would run as a formula: rejected.csv neutralises it (OWASP)
    df.loc[df["id_str"] == "g0_3", "id_str"] = "=1+1"
    df.to_csv(catalog, index=False)
    return {
        "g0_0": "file not found",
        "g0_1": "truncated",
        "'=1+1": "not a PNG or JPEG",
        "g0_4": "unsupported mode CMYK",
        "g0_6": "unsupported format GIF",
    }


def test_bad_images_are_rejected_with_reasons_and_counted(tmp_path):
    catalog = make_catalog(tmp_path)
    broken = _break_images(tmp_path, catalog)
    shard_dir = tmp_path / "shards"
    with pytest.raises(UserError, match="1 of 30 image files are missing"):
        shard(config_for(catalog, shard_dir))  # before any decoding
    with pytest.raises(UserError, match="5 of 30 galaxies rejected.*rejected.csv"):
        shard(config_for(catalog, shard_dir, max_rejected_fraction=0.1))
    manifest = shard(config_for(catalog, shard_dir, max_rejected_fraction=0.2))
    rejected = pd.read_csv(manifest.rejected_path, dtype={"id_str": str}).set_index("id_str")
    assert set(rejected.index) == set(broken)
    for galaxy, reason in broken.items():
        assert reason in rejected.loc[galaxy, "reason"]
    counts = manifest.counts
    assert (counts["written"], counts["rejected"], counts["catalog_rows"]) == (25, 5, 30)
    per_split = sum(manifest.n_galaxies(s) for s in manifest.split_names)
    assert (
        per_split
        == 25
        == sum(len(pd.read_parquet(manifest.catalog_path(s))) for s in manifest.split_names)
    )


def test_unlabelled_catalog_becomes_the_predict_split_in_catalog_order(tmp_path):
    labelled = make_catalog(tmp_path, n=10)
    unlabelled = make_catalog(tmp_path, n=12, seed=1, name="unlabelled.csv")
    config = config_for(
        labelled, tmp_path / "shards", unlabelled_catalog=str(unlabelled), max_unlabelled=9
    )
    manifest = shard(config)
    assert manifest.split_names == ["train", "val", "test", "predict"]
    ds = make_dataset(manifest, "predict", batch_size=4, training=False)
    ids = [i.decode() for _, batch in ds.as_numpy_iterator() for i in batch]
    assert ids == [f"g1_{i}" for i in range(9)]
    assert manifest.counts["catalog_rows"] == 19 == manifest.counts["written"]


def test_parallel_workers_write_the_same_bytes(tmp_path, monkeypatch):
    catalog = make_catalog(tmp_path, n=70)
    serial = shard(config_for(catalog, tmp_path / "serial", shard_size=16))
    monkeypatch.setattr(writer, "PARALLEL_MIN", 0)
    parallel = shard(config_for(catalog, tmp_path / "parallel", shard_size=16, n_workers=2))
    hashes = [[f.sha256 for f in m.splits["train"]] for m in (serial, parallel)]
    assert hashes[0] == hashes[1] and len(hashes[0]) == 4


def test_recording_the_run_id_changes_neither_data_nor_manifest_hash(tmp_path):
    config = config_for(make_catalog(tmp_path, n=6), tmp_path / "shards")
    manifest = shard(config)
    recorded = run_shard(config, run_id="abc123")
    assert recorded.files_written == 0 and recorded.manifest.shard_run_id == "abc123"
    assert load_manifest(manifest.shard_dir).shard_run_id == "abc123"
    assert recorded.manifest.sha256 == manifest.sha256
    assert run_shard(config, run_id="other").manifest.shard_run_id == "abc123"  # kept


def test_entry_point_logs_an_mlflow_run(tmp_path, tracking):
    import mlflow

    from entry_points.shard import main

    catalog = make_catalog(tmp_path, n=10)
    shard_dir = tmp_path / "shards"
    main(
        [
            "--preset",
            "debug",
            "--schema",
            "gz1",
            "--catalog",
            str(catalog),
            "--shard-dir",
            str(shard_dir),
        ]
    )
    manifest = load_manifest(shard_dir)
    run = mlflow.get_run(manifest.shard_run_id)
    assert run.data.params["shard.img_size"] == "32"
    assert run.data.metrics["n_train"] == 7 and run.data.metrics["n_rejected"] == 0
    assert run.data.tags["gz.manifest_sha256"] == manifest.sha256
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "shards")}
    assert logged == {"shards/manifest.json", "shards/rejected.csv"}
    assert run.info.run_name == "shard"
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"gz1/train", "gz1/val", "gz1/test"}
    assert inputs["gz1/train"].dataset.digest == manifest.sha256[:32]


def test_real_gz1_images_shard_and_read_back(tmp_path):
    catalog = shared_data("gz1_sdss_64") / "catalog.csv"
    config = config_for(
        catalog,
        tmp_path / "shards",
        img_size=32,
        shard_size=64,
        max_labelled=200,
        class_column="gz1_class_name",
    )
    manifest = shard(config)
    assert manifest.counts["written"] == 200 and manifest.counts["rejected"] == 0
    batches = list(make_dataset(manifest, "train", batch_size=32, training=True, seed=0))
    assert len(batches) == 140 // 32
    images, counts = batches[0]
    images = images.numpy()
    assert images.shape == (32, 32, 32, 1)
    centre, edge = images[:, 12:20, 12:20].mean(), images[:, :4].mean()
    assert centre > 2 * edge  # SDSS cutouts are centred on their galaxy
    np.testing.assert_array_equal(counts.numpy().sum(axis=1), 1.0)  # one GZ1 majority vote each


def test_two_processes_write_byte_identical_shards(tmp_path):
    """A tf.train.Example's feature map is serialised in an order that changes between
    processes unless asked to be deterministic: then the manifest's hashes could never confirm
    a rerun. Two processes (hash seeds that gave different orders) must write the same bytes."""
    catalog = make_catalog(tmp_path, n=12)
    script = (
        "import sys; from pathlib import Path; from tests.test_shards import config_for, shard; "
        "shard(config_for(Path(sys.argv[1]), Path(sys.argv[2])))"
    )
    for name, hash_seed in (("a", "1"), ("b", "2")):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO))
        subprocess.run([sys.executable, "-c", script, str(catalog), str(tmp_path / name)],
                       cwd=REPO, env=env, check=True, capture_output=True)  # fmt: skip
    files = {name: sorted((tmp_path / name).glob("*.tfrecord")) for name in "ab"}
    assert len(files["a"]) >= 2 and [p.name for p in files["a"]] == [p.name for p in files["b"]]
    for a, b in zip(files["a"], files["b"], strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
