"""Vote-fraction MAE and the constant-prediction baseline."""

from __future__ import annotations

import keras
import numpy as np

from gz_experiments.losses import dirichlet_multinomial_nll
from gz_experiments.metrics import (
    baseline_concentrations,
    baseline_loss,
    vote_fraction_mae,
)
from gz_experiments.schema import Schema

TREE = Schema.from_dict(
    {
        "name": "two",
        "questions": [
            {"name": "shape", "answers": ["round", "disk", "star"]},
            {"name": "bar", "answers": ["yes", "no"], "parents": ["shape_disk"]},
        ],
    }
)


def test_mae_per_question_by_hand_ignoring_unasked_questions():
    counts = np.array([[3, 1, 0, 2, 2], [0, 4, 0, 0, 0]], dtype=np.float32)
    alphas = np.array([[2, 1, 1, 1, 3], [1, 1, 2, 5, 5]], dtype=np.float32)
    metric = vote_fraction_mae(TREE)
    metric.update_state(counts, alphas)
    result = {k: float(keras.ops.convert_to_numpy(v)) for k, v in metric.result().items()}
    # shape: galaxy 1 |.75-.5|,|.25-.25|,|0-.25| -> 1/6; galaxy 2 |0-.25|,|1-.25|,|0-.5| -> 1/2
    assert np.isclose(result["mae/shape"], (1 / 6 + 1 / 2) / 2)
    # bar: only galaxy 1 was asked: |.5-.25|, |.5-.75| -> 1/4
    assert np.isclose(result["mae/bar"], 0.25)
    assert set(result) == {"mae/shape", "mae/bar"}


def test_baseline_beats_other_constant_predictions():
    rng = np.random.default_rng(0)
    n = 400
    shape = rng.multinomial(20, [0.6, 0.3, 0.1], size=n)
    bar = np.array([rng.multinomial(k, [0.2, 0.8]) for k in shape[:, 1]])
    counts = np.concatenate([shape, bar], axis=1).astype(np.float64)
    alphas = baseline_concentrations(counts, TREE)
    best = baseline_loss(counts, alphas, TREE)
    # Expected fractions are the pooled training fractions.
    np.testing.assert_allclose(alphas[:3] / alphas[:3].sum(), shape.sum(0) / shape.sum(), atol=0.02)
    for other in (np.ones(5), np.full(5, 50.0), alphas * 3, alphas / 3):
        assert best < baseline_loss(counts, np.clip(other, 1, 101), TREE)
    manual = dirichlet_multinomial_nll(counts, np.tile(alphas, (n, 1)), TREE).numpy()
    assert np.isclose(best, manual.sum(axis=1).mean())
    assert np.all((alphas >= 1) & (alphas <= 101))


def test_baseline_handles_a_question_nobody_answered():
    counts = np.array([[5, 0, 0, 0, 0], [4, 1, 0, 0, 0]], dtype=np.float64)
    alphas = baseline_concentrations(counts, TREE)
    assert np.all(np.isfinite(alphas))
    assert np.isclose(alphas[3], alphas[4])  # no votes on bar: uniform
