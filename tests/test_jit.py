"""XLA (`jit_compile`) and precision switches: the same numbers with and without XLA, and the
"auto" defaults (XLA and mixed_float16 only with a GPU)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from gz_experiments.config import Sampling, TrainConfig
from gz_experiments.models import build_model
from gz_experiments.prediction.sampling import Sampler
from gz_experiments.training.fit import compile_model, policy_name

from .conftest import shared_data
from .tiny_models import REAL_IMAGES, tiny_spec

SIDE = 32


def real_batch(n: int = 8) -> tuple[np.ndarray, list[str]]:
    """n real DECaLS galaxies, greyscale, resized to the tiny model's stored side."""
    files = sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[:n]
    images = [Image.open(f).convert("L").resize((SIDE, SIDE), Image.BILINEAR) for f in files]
    pixels = np.stack([np.asarray(i, np.float32)[..., None] / 255 for i in images])
    return pixels, [f.stem for f in files]


def compiled_model(jit: str, dropout: float = 0.0) -> keras.Model:
    spec = tiny_spec(img_size=SIDE, dropout=dropout)
    model = build_model(spec, seed=3)
    compile_model(model, TrainConfig.resolve("debug", jit_compile=jit), spec)
    return model


def test_training_steps_give_the_same_losses_and_weights_with_and_without_xla():
    """Augmentation (random rotation, flips, crop) draws the same transforms under XLA; Keras'
    dropout does not (TensorFlow's generators differ there), hence dropout 0 here."""
    x, _ = real_batch()
    y = np.random.default_rng(0).integers(0, 6, (len(x), tiny_spec().schema.n_answers))
    y = y.astype(np.float32)
    models = {jit: compiled_model(jit) for jit in ("true", "false")}
    assert models["true"].jit_compile is True and models["false"].jit_compile is False
    start = models["false"].get_weights()
    losses = {jit: [m.train_on_batch(x, y) for _ in range(3)] for jit, m in models.items()}
    np.testing.assert_allclose(losses["true"], losses["false"], rtol=1e-4)
    # Adam moves every weight by ~learning rate per step, whatever the gradient's size, so
    # rounding differences of near-zero gradients show up as up to ~10 % of one step.
    xla, plain = models["true"].get_weights(), models["false"].get_weights()
    moved = max(np.abs(b - w).max() for b, w in zip(plain, start, strict=True))
    differ = max(np.abs(a - b).max() for a, b in zip(xla, plain, strict=True))
    assert moved > 1e-3 and differ < 0.1 * moved


def test_head_mode_predictions_are_the_same_with_and_without_xla():
    x, ids = real_batch()
    model = build_model(tiny_spec(img_size=SIDE, dropout=0.5), seed=1)
    sampling = Sampling(n_samples=4, seed=7)
    with_xla = Sampler(model, sampling, jit_compile=True)(x, ids)
    without = Sampler(model, sampling, jit_compile=False)(x, ids)
    assert with_xla.shape == (len(x), 4, tiny_spec().schema.n_answers)
    np.testing.assert_allclose(with_xla, without, rtol=1e-4)
    assert not np.allclose(without[:, 0], without[:, 1])  # the dropout samples differ


def test_auto_means_no_xla_and_float32_without_a_gpu():
    # tests run with CUDA_VISIBLE_DEVICES=-1 (conftest)
    assert compiled_model("auto").jit_compile is False
    assert policy_name("auto") == "float32"
    assert Sampler(build_model(tiny_spec(), seed=0), Sampling()).functions["features"]
    expected = {"true": "mixed_float16", "false": "float32", "bfloat16": "mixed_bfloat16"}
    assert {k: policy_name(k) for k in expected} == expected


def test_the_settings_reject_other_values():
    from gz_experiments.config import ConfigError

    with pytest.raises(ConfigError, match="jit_compile"):
        TrainConfig.resolve("debug", jit_compile="yes")
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainConfig.resolve("debug", mixed_precision="float16")
    assert TrainConfig.from_strings("debug", {"mixed_precision": "true"}).mixed_precision == "true"


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_cpu_features_in_two_half_batches_equal_one_pass(batch):
    """The Sampler runs two half-batches side by side on a CPU: same features as one pass."""
    from gz_experiments.models import split_model

    x, ids = real_batch(batch)
    model = build_model(tiny_spec(img_size=SIDE), seed=2)
    augment, encoder, _ = split_model(model)
    features = Sampler(model, Sampling(n_samples=2), jit_compile=False).functions["features"]
    whole = encoder(augment(x, training=False), training=False).numpy()
    np.testing.assert_allclose(features(x).numpy(), whole, atol=1e-5)
