"""import_encoder: timm checkpoints saved as the Hugging Face hub stores them give a Keras encoder
whose pooled features equal PyTorch's (max |diff| <= 1e-4, float32); Keras weights files load;
the imported model finetunes and embeds; bad inputs are one-line errors. torch and timm are dev
dependencies: the comparisons skip without them (tests/timm_reference.py)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from gz_experiments.config import ImportEncoderConfig
from gz_experiments.encoders.run import run_import_encoder
from gz_experiments.errors import UserError
from gz_experiments.models import build_encoder

from .timm_reference import import_timm, random_timm_model, save_like_hub, torch_features

SIZE = 64  # the smallest side every architecture here takes (stride 32), keeping tests fast
TOLERANCE = 1e-4


def images(n: int, channels: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, SIZE, SIZE, channels), dtype=np.float32)


def imported_encoder(source, tmp_path, **changes):
    config = ImportEncoderConfig.resolve(
        "debug", source=str(source), img_size=SIZE, image_size=SIZE, **changes
    )
    result = run_import_encoder(config, tmp_path)
    from gz_experiments.tracking.models import load_files  # as finetune/embed load it

    spec_path = tmp_path / "model_spec.json"
    spec_path.write_text(json.dumps(result.spec.to_dict()))
    model, _ = load_files(result.keras_path, spec_path)
    return model.get_layer("encoder"), result


@pytest.mark.parametrize(
    "architecture", ["convnext_nano", "resnet50", "efficientnet_b0", "tf_efficientnet_b0"]
)
def test_pooled_features_equal_timm_from_a_hub_cache_folder(architecture, tmp_path):
    torch_model = random_timm_model(architecture)
    repo = save_like_hub(torch_model, architecture, tmp_path / "hub")
    encoder, result = imported_encoder(repo, tmp_path)
    assert result.spec.architecture == architecture  # from config.json
    assert result.weights_file.name == "model.safetensors"
    batch = images(4)
    expected = torch_features(torch_model, batch)
    got = encoder.predict(batch, verbose=0)
    assert got.shape == expected.shape == (4, torch_model.num_features)
    assert np.abs(got - expected).max() <= TOLERANCE
    assert np.abs(expected).mean() > 1e-2  # features carry signal, not a trivial match


@pytest.mark.parametrize(
    "size", ["convnext_tiny", "convnext_base"]
)  # small: tiny's widths, base's depths
def test_every_convnext_size_takes_its_timm_checkpoint(size, tmp_path):
    """Same code, other depths and widths: every tensor has its place (no features compared, to
    keep the suite fast; nano's are, above)."""
    from gz_experiments.encoders.torch_weights import copy_state

    state = {k: v.numpy() for k, v in random_timm_model(size).state_dict().items()}
    encoder = build_encoder(size, SIZE, 3)
    assert copy_state(encoder, state, size) == len(encoder.weights) - 2  # not standardize's


def test_a_pytorch_pickle_and_greyscale_images(tmp_path):
    """A .pth state dict (needs torch) into a greyscale encoder: the colour stem summed over RGB
    gives the features of the grey image repeated in three channels; mean/std standardise."""
    torch, _ = import_timm()
    torch_model = random_timm_model("convnext_nano", seed=3)
    path = tmp_path / "encoder.pth"
    torch.save(torch_model.state_dict(), path)
    mean, std = 0.2, 0.5
    encoder, _ = imported_encoder(
        path, tmp_path, architecture="convnext_nano", greyscale=True, mean=(mean,), std=(std,)
    )
    grey = images(2, channels=1)
    expected = torch_features(torch_model, np.repeat((grey - mean) / std, 3, axis=-1))
    assert np.abs(encoder.predict(grey, verbose=0) - expected).max() <= TOLERANCE


def test_a_keras_weights_file_loads_into_its_architecture(tmp_path):
    """A Keras EfficientNetB0 saved with save_weights (as one would ImageNet's) -> the same
    features from this project's efficientnetb0 encoder, which scales [0, 1] images to 0-255."""
    import keras

    reference = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg"
    )
    rng = np.random.default_rng(0)
    reference.set_weights([w + 0.01 * rng.standard_normal(w.shape).astype(w.dtype) if w.ndim > 1
                           else w for w in reference.get_weights()])  # fmt: skip
    path = tmp_path / "efficientnetb0.weights.h5"
    reference.save_weights(path)
    encoder, result = imported_encoder(path, tmp_path, architecture="efficientnetb0")
    batch = images(2)
    expected = reference.predict(batch * 255.0, verbose=0)
    np.testing.assert_allclose(encoder.predict(batch, verbose=0), expected, atol=1e-4, rtol=1e-4)
    assert result.n_tensors == len(encoder.weights)


def test_wrong_inputs_are_one_line_errors(tmp_path):
    def fails(match: str, **changes):
        with pytest.raises(UserError, match=match) as caught:
            config = ImportEncoderConfig.resolve("debug", **changes)
            run_import_encoder(config, tmp_path)
        assert "\n" not in str(caught.value)

    fails("no such file", source=str(tmp_path / "missing.safetensors"))
    (tmp_path / "empty").mkdir()
    fails("no model.safetensors", source=str(tmp_path / "empty"))
    weights = tmp_path / "w" / "model.safetensors"
    weights.parent.mkdir()
    from safetensors.numpy import save_file

    save_file({"stem.0.weight": np.zeros((80, 3, 4, 4), np.float32)}, str(weights))
    fails("no config.json says its architecture", source=str(weights))
    fails("'maxvit_tiny_tf_224' cannot be imported.*supported: convnext_nano",
          source=str(weights), architecture="maxvit_tiny_tf_224")  # fmt: skip
    fails("tensor.*missing", source=str(weights), architecture="convnext_nano")


def test_an_imported_convnext_nano_is_registered_finetuned_and_embeds(tracking, tmp_path):
    """timm checkpoint -> import_encoder (registered) -> finetune a few steps -> embed."""
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from entry_points.embed import run as embed
    from entry_points.finetune import run as finetune
    from entry_points.import_encoder import run as import_encoder
    from gz_experiments.config import EmbedConfig, FinetuneConfig, ShardConfig
    from gz_experiments.shards.writer import run_shard
    from gz_experiments.tracking.models import load_galaxy_model

    from .test_train import write_catalog

    shard_dir = tmp_path / "shards"
    run_shard(
        ShardConfig.resolve(
            "debug",
            catalog=str(write_catalog(tmp_path, n=40)),
            img_size=32,
            shard_dir=str(shard_dir),
            val_fraction=0.2,
            test_fraction=0.2,
            n_workers=1,
        ),  # fmt: skip
        progress=False,
    )
    repo = save_like_hub(random_timm_model("convnext_nano"), "convnext_nano", tmp_path / "hub")
    imported = import_encoder(
        ImportEncoderConfig.resolve(
            "debug",
            source=str(repo),
            img_size=32,
            image_size=32,
            greyscale=True,
            name="zoobot-nano",
            alias="imported",
        )  # fmt: skip
    )
    version = MlflowClient().get_model_version_by_alias("zoobot-nano", "imported")
    assert version.tags["gz.head"] == "untrained"
    assert version.tags["gz.weights_sha256"] == imported.weights_sha256
    parent, spec = load_galaxy_model("models:/zoobot-nano@imported")
    assert (spec.architecture, spec.channels, spec.img_size) == ("convnext_nano", 1, 32)

    result = finetune(
        FinetuneConfig.resolve(
            "debug",
            model_uri="models:/zoobot-nano@imported",
            epochs=1,
            shard_dir=str(shard_dir),
            mode="last_n_blocks",
            n_blocks=2,
            verbose=0,
        )  # fmt: skip
    )
    assert [b.name for b in result.blocks if b.trainable] == ["stages.3", "head"]
    finetuned_run = mlflow.last_active_run().info.run_id
    finetuned, _ = load_galaxy_model(f"runs:/{finetuned_run}/model")
    before = parent.get_layer("encoder").get_layer("stages.0.blocks.0.conv_dw").get_weights()
    after = finetuned.get_layer("encoder").get_layer("stages.0.blocks.0.conv_dw").get_weights()
    np.testing.assert_array_equal(before[0], after[0])  # a frozen block kept its imported weights

    output = tmp_path / "embeddings.parquet"
    embed(
        EmbedConfig.resolve(
            "debug",
            model_uri=f"runs:/{finetuned_run}/model",
            split="test",
            input=str(shard_dir),
            output=str(output),
            anomaly="none",
        )  # fmt: skip
    )
    table = pd.read_parquet(output)
    assert len(table) == 8 and table.shape[1] == 1 + 640  # id_str + convnext_nano's features
    assert np.isfinite(table.drop(columns="id_str").to_numpy()).all()


def test_train_and_finetune_configs_name_every_registered_architecture():
    from gz_experiments.config.training import ARCHITECTURE_NAMES
    from gz_experiments.models import ARCHITECTURES, ENCODER_BLOCKS

    assert set(ARCHITECTURE_NAMES) == set(ARCHITECTURES) == set(ENCODER_BLOCKS)


def test_pytorch_files_without_torch_and_lightning_checkpoints(tmp_path, monkeypatch):
    from gz_experiments.encoders.checkpoint import encoder_part, read_torch

    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    with pytest.raises(UserError, match=r"needs torch \(pip install torch\).*model\.safetensors"):
        read_torch(tmp_path / "encoder.pth")
    lightning = {"encoder.stem.0.weight": np.ones(1), "head.weight": np.zeros(1)}
    assert list(encoder_part(lightning, tmp_path)) == ["stem.0.weight"]
    plain = {"stem.0.weight": np.ones(1), "head.norm.weight": np.ones(1)}
    assert encoder_part(plain, tmp_path) is plain
