import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from gz_experiments.losses import (
    DirichletMultinomialLoss,
    concentrations_from_logits,
    dirichlet_multinomial_nll,
    per_question_metric,
)
from gz_experiments.schema import get_schema


def _random_batch(schema, n=64, seed=0):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(1.0, 101.0, size=(n, schema.n_answers))
    counts = np.zeros((n, schema.n_answers))
    for start, end in schema.question_index_groups:
        total = rng.integers(0, 45, size=n)
        p = rng.dirichlet(np.ones(end - start + 1), size=n)
        counts[:, start : end + 1] = [
            rng.multinomial(t, pi) for t, pi in zip(total, p, strict=True)
        ]
    return counts, alpha


def test_matches_scipy_dirichlet_multinomial_in_float64():
    schema = get_schema("gzd5")
    counts, alpha = _random_batch(schema)
    ours = dirichlet_multinomial_nll(counts, tf.constant(alpha, tf.float64), schema).numpy()
    assert ours.shape == (64, schema.n_questions)
    for q, (start, end) in enumerate(schema.question_index_groups):
        k, a = counts[:, start : end + 1], alpha[:, start : end + 1]
        for i in range(len(k)):
            n = int(k[i].sum())
            if n == 0:
                assert ours[i, q] == 0.0
                continue
            expected = -stats.dirichlet_multinomial.logpmf(k[i], a[i], n)
            assert ours[i, q] == pytest.approx(expected, rel=1e-6)


def test_zero_vote_question_contributes_exactly_zero_loss_and_gradient():
    schema = get_schema("gzd5")
    counts, alpha = _random_batch(schema, n=8, seed=1)
    start, end = schema.question_index_groups[3]
    counts[:, start : end + 1] = 0.0
    logits = tf.Variable(np.random.default_rng(2).normal(size=alpha.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        nll = dirichlet_multinomial_nll(counts, concentrations_from_logits(logits), schema)
        total = tf.reduce_sum(nll)
    grad = tape.gradient(total, logits).numpy()
    assert np.all(nll.numpy()[:, 3] == 0.0)
    assert np.all(grad[:, start : end + 1] == 0.0)
    assert np.all(np.isfinite(grad))
    assert np.any(grad[:, :start] != 0.0)


def test_gradients_finite_at_extreme_logits():
    schema = get_schema("gzd5")
    counts, _ = _random_batch(schema, n=4, seed=3)
    logits = tf.Variable(
        np.full((4, schema.n_answers), 50.0, np.float32)
        * np.sign(np.random.default_rng(4).normal(size=(4, schema.n_answers))).astype(np.float32)
    )
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(
            dirichlet_multinomial_nll(counts, concentrations_from_logits(logits), schema)
        )
    assert np.isfinite(loss.numpy())
    assert np.all(np.isfinite(tape.gradient(loss, logits).numpy()))


def test_concentrations_range():
    values = concentrations_from_logits(tf.constant([-1e3, 0.0, 1e3])).numpy()
    assert values[0] == pytest.approx(1.0) and values[1] == pytest.approx(51.0)
    assert values[2] == pytest.approx(101.0)


def test_keras_loss_sums_questions_and_means_galaxies():
    schema = get_schema("gzd5")
    counts, alpha = _random_batch(schema, n=16, seed=5)
    loss = DirichletMultinomialLoss(schema.question_index_groups)
    value = float(loss(counts.astype(np.float32), alpha.astype(np.float32)))
    per_q = dirichlet_multinomial_nll(counts, tf.constant(alpha, tf.float64), schema).numpy()
    assert value == pytest.approx(per_q.sum(axis=1).mean(), rel=1e-4)


def test_keras_loss_and_metric_serialise():
    import keras

    schema = get_schema("gzd5")
    loss = DirichletMultinomialLoss(schema.question_index_groups)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.question_index_groups == loss.question_index_groups
    metric = per_question_metric(schema)
    counts, alpha = _random_batch(schema, n=10, seed=6)
    metric.update_state(counts, alpha)
    result = metric.result()
    assert set(result) == {f"loss/{q.name}" for q in schema.questions}
    per_q = dirichlet_multinomial_nll(counts, tf.constant(alpha, tf.float64), schema).numpy()
    assert float(result["loss/bar"]) == pytest.approx(per_q[:, 3].mean(), rel=1e-4)


def test_loss_saved_in_a_model_reloads_without_custom_objects(tmp_path):
    import keras

    schema = get_schema("gz1")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(schema.n_answers, activation="softplus")(inputs))
    model.compile(
        optimizer="adam",
        loss=DirichletMultinomialLoss(schema.question_index_groups),
        metrics=[per_question_metric(schema)],
    )
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[np.arange(8) % 5]
    history = model.fit(x, y, epochs=1, verbose=0)
    assert "loss/gz1-class" in history.history
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.loss, DirichletMultinomialLoss)
