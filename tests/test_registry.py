"""Model logging/loading and the registry: best run, version tags, the champion alias."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gz_experiments.config import RegisterConfig
from gz_experiments.errors import UserError
from gz_experiments.tracking.models import load_galaxy_model
from gz_experiments.tracking.registry import run_register as register

from .tiny_models import log_training_run, save_tiny_model, tiny_spec

NAME = "gz-test"


def run_register(experiment: str, run_id: str = "", force: bool = False):
    config = RegisterConfig.resolve("cpu", experiment=experiment, name=NAME, run_id=run_id)
    return register(config.replace(force=force))


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "m.keras", tiny_spec())


def champion(name: str = NAME) -> str:
    return str(MlflowClient().get_model_version_by_alias(name, "champion").version)


def test_logged_model_loads_back_from_every_kind_of_uri(tracking, keras_file, tmp_path):
    run_id = log_training_run(keras_file, tiny_spec(), 1.0)
    images = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    reference = None
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path))
    for uri in (f"runs:/{run_id}/model", f"runs:/{run_id}", local):
        model, spec = load_galaxy_model(uri)
        assert spec == tiny_spec()
        out = model(images, training=False).numpy()
        reference = out if reference is None else reference
        np.testing.assert_allclose(out, reference)
    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert info.metadata["gz_model_spec"]["img_size"] == 32
    assert info.signature.params.to_dict()[0]["name"] == "n_samples"
    for uri in ("", "runs:/0123456789abcdef/model", "no/such/folder"):
        with pytest.raises(UserError, match="no model given|cannot load model|no such local"):
            load_galaxy_model(uri)


def test_best_finished_training_run_becomes_champion_with_tags(tracking, keras_file):
    with pytest.raises(UserError, match="no FINISHED training run"):
        run_register("test")
    with pytest.raises(UserError, match="no experiment named"):
        run_register("nope")
    spec = tiny_spec()
    log_training_run(keras_file, spec, 2.0)
    best = log_training_run(keras_file, spec, 1.0, manifest_hash="m1")
    log_training_run(keras_file, spec, 0.5, fail=True)  # better, but FAILED
    with mlflow.start_run():  # better, but no model
        mlflow.set_tags({"gz.step": "train"})
        mlflow.log_metric("best_val_loss", 0.1)
    result = run_register("test")
    assert (result.run_id, result.alias_moved, result.previous_version) == (best, True, None)
    version = MlflowClient().get_model_version(NAME, result.version)
    assert version.tags["gz.source_run_id"] == best
    assert float(version.tags["gz.val_loss"]) == 1.0
    assert version.tags["gz.schema"] == "gzd5"
    assert version.tags["gz.data_manifest_sha256"] == "m1"
    assert champion() == result.version
    again = run_register("test")  # same run: same version, alias untouched
    assert (again.version, again.alias_moved) == (result.version, False)


def test_worse_model_does_not_take_the_alias_unless_forced(tracking, keras_file):
    spec = tiny_spec()
    good = run_register("", run_id=log_training_run(keras_file, spec, 1.0))
    worse_run = log_training_run(keras_file, spec, 1.5, manifest_hash="other")
    worse = run_register("", run_id=worse_run)
    assert not worse.alias_moved and champion() == good.version
    assert "does not beat" in worse.reason and "different data manifests" in worse.reason
    forced = run_register("", run_id=worse_run, force=True)
    assert forced.alias_moved and forced.version == worse.version and champion() == worse.version
    better = run_register("", run_id=log_training_run(keras_file, spec, 0.9))
    assert better.alias_moved and champion() == better.version
