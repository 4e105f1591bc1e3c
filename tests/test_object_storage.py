"""Shards and MLflow artifacts on an S3-compatible store, through the S3 API of moto's standalone
server (an emulator started here as a real process on loopback, not AWS; see object_store.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import boto3
import mlflow
import numpy as np
import pytest

from gz_experiments.errors import UserError
from gz_experiments.shards.dataset import make_dataset
from gz_experiments.shards.manifest import load_manifest

from .object_store import EMULATOR_ENV, s3_server
from .test_shards import config_for, make_catalog, shard
from .tiny_models import log_training_run, save_tiny_model, tiny_spec

BUCKET = "gz-test"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as url:
        yield url


@pytest.fixture
def s3(endpoint, monkeypatch, tmp_path):
    """This test's bucket on the server, the standard endpoint variables set, a fresh cache."""
    for key, value in {**EMULATOR_ENV, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("GZ_CACHE_DIR", str(tmp_path / "cache"))
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def uploaded(s3, tmp_path):
    """A small shard folder written locally and uploaded whole: (local manifest, its URL)."""
    manifest = shard(config_for(make_catalog(tmp_path), tmp_path / "shards"))
    for path in sorted((tmp_path / "shards").iterdir()):
        s3.upload_file(str(path), BUCKET, f"shards/{path.name}")
    return manifest, f"s3://{BUCKET}/shards"


def batches(manifest, split):
    return [tuple(map(np.asarray, b)) for b in make_dataset(manifest, split, batch_size=4,
                                                            training=False, with_ids=True)]  # fmt: skip


def test_a_shard_folder_on_s3_reads_as_its_local_original(uploaded, s3, tmp_path):
    local, url = uploaded
    remote = load_manifest(url)
    assert remote.sha256 == local.sha256
    assert remote.shard_dir.is_relative_to(tmp_path / "cache" / "remote-shards")
    for split in ("train", "val", "test"):
        for got, expected in zip(batches(remote, split), batches(local, split), strict=True):
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
    # The copy is read from the cache from then on: the store is asked for the manifest only.
    s3.delete_object(Bucket=BUCKET, Key=f"shards/{local.files('train')[0].name}")
    assert load_manifest(url).shard_dir == remote.shard_dir


def test_processes_copying_the_same_folder_at_once_get_one_verified_copy(uploaded):
    _, url = uploaded
    command = [sys.executable, "-c", f"from gz_experiments.shards.remote import local_shards as l; print(l({url!r}))"]  # fmt: skip
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    folders = {w.communicate(timeout=120)[0].strip() for w in workers}
    assert [w.returncode for w in workers] == [0, 0, 0]
    (folder,) = folders
    assert load_manifest(url).shard_dir == Path(folder)
    assert not list(Path(folder).glob("*.partial"))


def test_an_altered_or_partial_upload_is_refused_in_one_line(uploaded, s3):
    local, url = uploaded
    name = local.files("val")[0].name
    s3.put_object(Bucket=BUCKET, Key=f"shards/{name}", Body=b"not the shard that was hashed")
    with pytest.raises(UserError, match=f"{name}: its sha256 differs from manifest.json"):
        load_manifest(url)
    s3.delete_object(Bucket=BUCKET, Key=f"shards/{name}")
    with pytest.raises(UserError, match=f"{name} is named in manifest.json but missing"):
        load_manifest(url)
    with pytest.raises(UserError, match="no manifest.json there; upload the whole shard folder"):
        load_manifest(f"s3://{BUCKET}/elsewhere")
    s3.put_object(Bucket=BUCKET, Key="torn/manifest.json", Body=b'{"splits": {"tr')
    with pytest.raises(UserError, match="torn/manifest.json: not a shard manifest"):
        load_manifest(f"s3://{BUCKET}/torn")


def test_mlflow_logs_and_loads_a_model_with_artifacts_on_s3(s3, tracking, tmp_path):
    import keras

    from gz_experiments.tracking.models import load_galaxy_model

    experiment = mlflow.create_experiment("on-s3", artifact_location=f"s3://{BUCKET}/mlflow")
    mlflow.set_experiment(experiment_id=experiment)
    keras_path = save_tiny_model(tmp_path / "m.keras", tiny_spec())
    run_id = log_training_run(keras_path, tiny_spec(), 1.0)

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("mlflow/models/") and k.endswith("/MLmodel") for k in keys), keys
    model, spec = load_galaxy_model(f"runs:/{run_id}/model")
    assert spec == tiny_spec()
    original = keras.models.load_model(keras_path)
    for got, expected in zip(model.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_store_without_its_driver_names_the_extra_to_install():
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed: this checks the message shown without it")
    expected = r"reading gs:// needs its fsspec driver: pip install 'gz-experiments\[gcs\]'"
    with pytest.raises(UserError, match=expected):
        load_manifest("gs://bucket/shards")


@pytest.mark.e2e
def test_train_reads_its_shards_from_s3_and_logs_their_hash(uploaded, tracking):
    from mlflow.tracking import MlflowClient

    from entry_points.train import run as run_training
    from gz_experiments.config import TrainConfig

    local, url = uploaded
    config = TrainConfig.resolve("debug", shard_dir=url, schema="gz1", epochs=1, batch_size=8,
                                 image_size=16, verbose=0)  # fmt: skip
    run_training(config)
    (run,) = MlflowClient().search_runs([mlflow.get_experiment_by_name("test").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["gz.data_manifest_sha256"] == local.sha256
    assert run.data.params["train.shard_dir"] == run.data.tags["gz.shard_dir"] == url
    sources = [json.loads(i.dataset.source)["uri"] for i in run.inputs.dataset_inputs]
    assert sources == [url, url]  # the store's URL, not the local copy's
