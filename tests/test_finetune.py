"""Finetuning: the finetune entry point from a registered model and from a run (lineage, resume),
what each mode trains (frozen / last_n_blocks / all with layer decay), the encoder blocks, the
checks of what a parent can read, and real labels as input (a one-question YAML tree of class
labels on real SDSS images; Kaggle GZ2 vote fractions through ingest)."""

from __future__ import annotations

import os
from dataclasses import fields
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest

from gz_experiments.config import FinetuneConfig, IngestConfig, ShardConfig
from gz_experiments.config.training import FitConfig
from gz_experiments.errors import UserError
from gz_experiments.models import (
    build_encoder,
    build_model,
    encoder_blocks,
    freeze_encoder,
    lr_multipliers,
    with_new_head,
)
from gz_experiments.shards.manifest import load_manifest
from gz_experiments.shards.writer import run_shard
from gz_experiments.training.finetune import (
    check_images,
    check_parent,
    run_finetune,
    training_config,
)
from gz_experiments.training.fit import LAST
from gz_experiments.training.optimizers import LayerwiseAdam

from .conftest import shared_data
from .tiny_models import log_training_run, tiny_spec

# A one-question tree with quoted answers (YAML would read bare yes/no as booleans).
RINGS_TREE = 'name: rings\nquestions:\n  - {name: ring, answers: ["yes", "no"]}\n'
PARENT = tiny_spec(img_size=24, channels=3)  # small_cnn on the gzd5 tree, 4 conv blocks


@pytest.fixture(scope="module")
def ring_shards(tmp_path_factory):
    """64 real SDSS galaxies, one class label each ("ring" = yes for GZ1 spirals), 24 px colour."""
    data = shared_data("gz1_sdss_64")
    folder = tmp_path_factory.mktemp("rings")
    catalog = pd.read_csv(data / "catalog.csv").head(64)
    catalog["file_loc"] = [str(data / f) for f in catalog["file_loc"]]
    catalog["ring"] = np.where(catalog["gz1_class_name"].str.startswith("spiral"), "yes", "no")
    catalog.to_csv(folder / "rings.csv", index=False)
    (folder / "rings.yaml").write_text(RINGS_TREE)
    config = ShardConfig.resolve(
        "debug", catalog=str(folder / "rings.csv"), shard_dir=str(folder / "shards"),
        schema=str(folder / "rings.yaml"), img_size=24, greyscale=False, class_column="ring",
        val_fraction=0.25, test_fraction=0.1, n_workers=1,
    )  # fmt: skip
    run_shard(config, progress=False).check()
    return load_manifest(folder / "shards")


@pytest.fixture(scope="module")
def parent():
    return build_model(PARENT, seed=0)


def config_for(shards, **changes) -> FinetuneConfig:
    values = {"shard_dir": str(shards.shard_dir), "model_uri": "unused", "verbose": 0, **changes}
    return FinetuneConfig.resolve("debug", **values)


def encoder_weights(model) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.get_layer("encoder").weights]


def block_weights(model, name: str) -> list[np.ndarray]:
    layers = encoder_blocks(model.get_layer("encoder"), "small_cnn")[name]
    return [w.numpy().copy() for layer in layers for w in layer.weights]


def logged_parent(tmp_path, model) -> str:
    path = tmp_path / "parent.keras"
    model.save(path)
    return log_training_run(path, PARENT, val_loss=10.0)


def test_frozen_finetune_from_a_registered_model_keeps_the_encoder_and_records_lineage(
    ring_shards, parent, tracking, tmp_path
):
    import mlflow
    from mlflow.tracking import MlflowClient

    from entry_points.finetune import run
    from gz_experiments.config import RegisterConfig
    from gz_experiments.prediction.stream import predict
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.tracking.registry import run_register

    parent_run = logged_parent(tmp_path, parent)
    client = MlflowClient()
    mlflow.register_model(f"runs:/{parent_run}/model", "gz-parent")
    client.set_registered_model_alias("gz-parent", "champion", "1")
    client.update_model_version("gz-parent", "1", description="pretrained on GZ DECaLS")
    client.set_model_version_tag("gz-parent", "1", "gz.val_loss", "10.0")

    config = config_for(ring_shards, model_uri="models:/gz-parent@champion", mode="frozen")
    result = run(config)

    run_id = mlflow.last_active_run().info.run_id
    finetuned, spec = load_galaxy_model(f"runs:/{run_id}/model")
    for before, after in zip(encoder_weights(parent), encoder_weights(finetuned), strict=True):
        np.testing.assert_array_equal(before, after)  # BatchNorm statistics included
    initial = with_new_head(parent, spec, seed=config.seed).get_layer("head")
    assert not np.allclose(initial.get_weights()[0], finetuned.get_layer("head").get_weights()[0])
    assert spec.label_cols == ["ring_yes", "ring_no"] and spec.schema.name == "rings"
    assert (spec.img_size, spec.channels, spec.crop_fraction) == (24, 3, PARENT.crop_fraction)
    assert [b.trainable for b in result.blocks] == [False] * 4

    tags = client.get_run(run_id).data.tags
    assert tags["gz.step"] == "finetune" and tags["gz.schema"] == "rings"
    assert tags["gz.parent_model_uri"] == "models:/gz-parent@champion"
    assert tags["gz.parent_model_source"] == "models:/gz-parent/1"
    assert tags["gz.parent_model_version"] == "1" and tags["gz.parent_run_id"] == parent_run
    assert tags["gz.parent_description"] == "pretrained on GZ DECaLS"
    assert tags["gz.parent_tag.val_loss"] == "10.0" and tags["gz.parent_schema"] == "gzd5"
    assert "models:/gz-parent/1" in tags["mlflow.note.content"]
    metrics = client.get_run(run_id).data.metrics
    assert metrics["n_trainable_weights"] == 128 * 2 + 2  # the new head's Dense only
    assert [m.step for m in client.get_metric_history(run_id, "val_loss/ring")] == [1, 2]

    # An ordinary galaxy model: predict and register take it unchanged.
    image = pd.read_parquet(ring_shards.catalog_path("test"))["file_loc"].iloc[0]
    table = predict(finetuned, spec, [image])
    assert 0 <= table["ring_yes_fraction"].iloc[0] <= 1
    registered = run_register(RegisterConfig.resolve("cpu", run_id=run_id, name="gz-rings"))
    assert registered.version == "1"


class CrashAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("simulated crash")


def test_finetune_from_a_run_resumes_after_a_crash(ring_shards, parent, tracking, tmp_path):
    from mlflow.tracking import MlflowClient

    from entry_points.finetune import run

    parent_run = logged_parent(tmp_path, parent)
    config = config_for(ring_shards, model_uri=f"runs:/{parent_run}/model", mode="all")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(config, callbacks=[CrashAfterFirstEpoch()])
    client = MlflowClient()
    crashed = client.search_runs(
        [os.environ["MLFLOW_EXPERIMENT_ID"]], "tags.`gz.step` = 'finetune'"
    )[0]
    assert crashed.info.status == "FAILED"
    assert crashed.data.tags["gz.parent_model_source"] == f"runs:/{parent_run}/model"

    result = run(FinetuneConfig.resolve("debug", resume_run_id=crashed.info.run_id, verbose=0))
    resumed = client.get_run(crashed.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.metrics["epochs_run"] == 2
    assert [m.step for m in client.get_metric_history(crashed.info.run_id, "val_loss")] == [1, 2]
    assert result.config.mode == "all" and all(b.trainable for b in result.blocks)
    last = client.download_artifacts(crashed.info.run_id, "checkpoints/last.keras", str(tmp_path))
    assert isinstance(keras.models.load_model(last).optimizer, LayerwiseAdam)


def test_last_n_blocks_trains_only_those_blocks(ring_shards, parent, tmp_path):
    config = config_for(ring_shards, mode="last_n_blocks", n_blocks=1)
    result = run_finetune(config, parent, PARENT, ring_shards, tmp_path)
    model = result.train.fit.model
    for name in ("block1", "block2", "block3"):
        for before, after in zip(
            block_weights(parent, name), block_weights(model, name), strict=True
        ):
            np.testing.assert_array_equal(before, after)
    changed = [
        not np.array_equal(b, a)
        for b, a in zip(
            block_weights(parent, "block4"), block_weights(model, "block4"), strict=True
        )
    ]
    assert all(changed)  # conv kernel, BatchNorm scale/offset and its running statistics
    assert [(b.name, b.trainable) for b in result.blocks][-2:] == [
        ("block3", False),
        ("block4", True),
    ]
    assert result.blocks[-1].lr_multiplier == pytest.approx(0.75)


def test_head_warmup_trains_the_head_alone_then_unfreezes_from_the_warmed_model(
    ring_shards, parent, tmp_path
):
    config = config_for(ring_shards, mode="all", head_warmup_epochs=2, epochs=1, patience=1)
    result = run_finetune(config, parent, PARENT, ring_shards, tmp_path)
    warm = result.warmup
    assert warm is not None and warm.epochs_run == 2 and len(warm.history["val_loss"]) == 2
    # The warm-up moved only the head: its encoder (BatchNorm statistics too) is the parent's.
    for before, after in zip(encoder_weights(parent), encoder_weights(warm.model), strict=True):
        np.testing.assert_array_equal(before, after)
    fresh = with_new_head(parent, warm.spec, seed=config.seed).get_layer("head")
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(fresh.weights, warm.model.get_layer("head").weights, strict=True))  # fmt: skip
    # Then mode all trains everything, starting from the warmed head, in its own checkpoints.
    final = result.train.fit
    assert final.epochs_run == 1 and (tmp_path / "warmup" / "checkpoints" / LAST).exists()
    assert all(b.trainable for b in result.blocks)
    assert any(not np.array_equal(b, a)
               for b, a in zip(encoder_weights(parent), encoder_weights(final.model), strict=True))  # fmt: skip
    assert "after 2 head-only epochs" in result.summary()
    # A second call resumes both phases from their checkpoints: nothing trains again.
    again = run_finetune(config, parent, PARENT, ring_shards, tmp_path)
    assert again.warmup.epochs_run == 2 and again.train.fit.epochs_run == 1
    assert again.train.best_val_loss == result.train.best_val_loss


def test_head_warmup_is_refused_where_it_means_nothing(ring_shards):
    with pytest.raises(UserError, match="head_warmup_epochs=3 with mode=frozen"):
        config_for(ring_shards, mode="frozen", head_warmup_epochs=3)


def test_every_training_loop_setting_of_a_finetune_reaches_the_fit(ring_shards):
    """A finetune is a train from a parent's encoder: each loop field the user sets (learning-rate
    decay, XLA, ...) is the one `fit` runs with; the model's fields are the parent's."""
    config = config_for(
        ring_shards, lr_decay_patience=3, lr_decay_factor=0.25, jit_compile="false",
        mixed_precision="false", steps_per_epoch=7, shuffle_buffer=99, dropout=0.4, seed=5,
    )  # fmt: skip
    fit_config = training_config(config, PARENT)
    for field in fields(FitConfig):
        assert getattr(fit_config, field.name) == getattr(config, field.name), field.name
    assert (fit_config.architecture, fit_config.image_size, fit_config.greyscale) == (
        PARENT.architecture,
        PARENT.image_size,
        PARENT.greyscale,
    )
    assert fit_config.crop_fraction == PARENT.crop_fraction


def test_learning_rate_decay_lowers_the_base_rate_the_layer_factors_ride_on(
    ring_shards, parent, tmp_path
):
    """lr_decay_patience=1: every epoch without a better validation loss halves the base rate
    (what the optimizer holds at the end follows from the validation history)."""
    config = config_for(
        ring_shards, epochs=5, patience=5, lr_decay_patience=1, lr_decay_factor=0.5,
        learning_rate=1e-6,  # so small that some epochs surely fail to improve
    )  # fmt: skip
    result = run_finetune(config, parent, PARENT, ring_shards, tmp_path)
    val_losses = result.train.fit.history["val_loss"]
    best, n_worse = float("inf"), 0
    for loss in val_losses:
        best, n_worse = (loss, n_worse) if loss < best else (best, n_worse + 1)
    assert len(val_losses) == 5 and n_worse >= 1  # seeded: the rate was lowered
    last = keras.models.load_model(result.train.fit.checkpoint_dir / LAST)  # with its optimizer
    optimizer = last.optimizer
    assert isinstance(optimizer, LayerwiseAdam)
    final_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    assert final_rate == pytest.approx(1e-6 * 0.5**n_worse, rel=1e-5)


def test_layer_decay_factors_and_the_optimizer_that_applies_them(tmp_path):
    model = build_model(PARENT, seed=0)
    freeze_encoder(model, "small_cnn", None)
    factors = lr_multipliers(model, "small_cnn", 0.5)
    paths = [v.path for v in model.trainable_variables]
    by_path = dict(zip(paths, factors, strict=True))
    assert by_path["logits/kernel"] == 1.0
    assert sorted(set(factors)) == [0.5**4, 0.5**3, 0.5**2, 0.5, 1.0]
    first_block = [p for p in paths if by_path[p] == 0.5**4]
    assert first_block and all(
        p.split("/")[0].startswith(("conv2d", "batch_norm")) for p in first_block
    )

    frozen_first = [0.0 if f == 0.5**4 else f for f in factors]
    model.compile(optimizer=LayerwiseAdam(frozen_first, learning_rate=0.01), loss="mse")
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    x = np.random.default_rng(0).random((8, 24, 24, 3), dtype=np.float32)
    model.fit(x, np.ones((8, PARENT.schema.n_answers), np.float32), epochs=1, verbose=0)
    for variable in model.trainable_variables:
        same = np.array_equal(before[variable.path], variable.numpy())
        assert same == (by_path[variable.path] == 0.5**4), variable.path
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").optimizer.multipliers == frozen_first


def test_efficientnet_splits_into_its_stages():
    blocks = encoder_blocks(build_encoder("efficientnetb0", 32, 1), "efficientnetb0")
    assert list(blocks) == ["stem", *(f"block{i}" for i in range(1, 8)), "top"]
    assert blocks["top"][0].name == "top_conv"


def test_what_the_parent_cannot_read_is_refused_precisely(ring_shards, parent):
    bigger = tiny_spec(img_size=32, channels=3)
    with pytest.raises(
        UserError, match="they store 24 px images, the parent reads 32 px.*img_size=32"
    ):
        check_images(ring_shards, bigger)
    grey = SimpleNamespace(img_size=24, channels=1, path="shards/manifest.json")
    with pytest.raises(UserError, match="greyscale, the parent reads colour"):
        check_images(grey, PARENT)
    with pytest.raises(UserError, match="has 4 blocks"):
        check_parent(config_for(ring_shards, mode="last_n_blocks", n_blocks=5), parent, PARENT,
                     ring_shards)  # fmt: skip
    with pytest.raises(UserError, match="pass schema=rings"):
        check_parent(config_for(ring_shards, schema="gz1"), parent, PARENT, ring_shards)


def test_kaggle_vote_fractions_are_finetune_labels(parent, tmp_path):
    """GZ2 Kaggle cumulative fractions -> ingest (fractional counts) -> shards -> finetune."""
    from gz_experiments.ingest.run import run_ingest

    data = shared_data("gz2_kaggle_424")
    ingested = run_ingest(IngestConfig.resolve(
        "paper", sources=str(data / "catalog.csv"), releases="kaggle-gz2", out=str(tmp_path / "in"),
        images=str(data / "images"), count_mode="fractional", max_rows=40,
    ))  # fmt: skip
    assert ingested.fractional_votes
    run_shard(ShardConfig.resolve(
        "debug", catalog=str(ingested.catalog), shard_dir=str(tmp_path / "shards"),
        schema="kaggle-gz2", img_size=24, greyscale=False, fractional_votes=True,
        val_fraction=0.25, test_fraction=0.1, n_workers=1,
    ), progress=False).check()  # fmt: skip
    shards = load_manifest(tmp_path / "shards")
    config = config_for(shards, mode="frozen", epochs=1)
    result = run_finetune(config, parent, PARENT, shards, tmp_path / "work")
    assert result.train.fit.spec.schema.name == "kaggle-gz2"
    assert np.isfinite(result.best_val_loss) and np.isfinite(result.train.baseline_val_loss)
