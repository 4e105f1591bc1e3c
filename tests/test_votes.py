"""The vote model's one home: NumPy and TensorFlow agree with each other and with SciPy, and the
predictive pieces, marginals and samplers agree with the likelihood."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from gz_experiments.schema import get_schema
from gz_experiments.votes.dirichlet_multinomial import (
    answer_marginal_pmf,
    draw_answers,
    expected_fractions,
    log_likelihood,
    log_multinomial_coefficient,
    log_normaliser,
    log_rising_table,
    numpy_log_likelihood,
    outcomes,
    sample_votes,
    tensorflow_backend,
)

SCHEMA = get_schema("gzd5")


def votes_and_concentrations(n=40, seed=0):
    """Counts with some unasked questions (N = 0) and concentrations spanning 0.05..101."""
    rng = np.random.default_rng(seed)
    alpha = np.exp(rng.uniform(np.log(0.05), np.log(101.0), size=(n, SCHEMA.n_answers)))
    counts = np.zeros((n, SCHEMA.n_answers))
    for start, end in SCHEMA.question_index_groups:
        total = rng.integers(0, 45, size=n)
        counts[:, start : end + 1] = rng.multinomial(
            total, np.full(end - start + 1, 1 / (end - start + 1))
        )
    return counts, alpha


def test_numpy_matches_scipy_dirichlet_multinomial():
    counts, alpha = votes_and_concentrations()
    ours = numpy_log_likelihood(counts, alpha, SCHEMA)
    assert ours.shape == (len(counts), SCHEMA.n_questions)
    for q, (start, end) in enumerate(SCHEMA.question_index_groups):
        for i in range(len(counts)):
            k, a = counts[i, start : end + 1], alpha[i, start : end + 1]
            expected = stats.dirichlet_multinomial.logpmf(k, a, int(k.sum())) if k.sum() else 0.0
            assert ours[i, q] == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_tensorflow_and_numpy_are_the_same_formula():
    counts, alpha = votes_and_concentrations(seed=1)
    backend = tensorflow_backend(SCHEMA, tf.float64)
    on_tf = log_likelihood(tf.constant(counts), tf.constant(alpha), backend).numpy()
    np.testing.assert_allclose(on_tf, numpy_log_likelihood(counts, alpha, SCHEMA), rtol=1e-12)


def test_an_unasked_question_is_exactly_zero_with_zero_gradient():
    alpha = tf.Variable(np.full((1, SCHEMA.n_answers), 3.7))
    with tf.GradientTape() as tape:
        value = log_likelihood(tf.zeros_like(alpha), alpha, tensorflow_backend(SCHEMA, tf.float64))
    assert np.all(value.numpy() == 0.0)
    assert np.all(tape.gradient(value, alpha).numpy() == 0.0)


def test_expected_fractions_are_the_dirichlet_means():
    _, alpha = votes_and_concentrations(n=5)
    fractions = expected_fractions(alpha, SCHEMA)
    start, end = SCHEMA.question_index_groups[2]
    block = alpha[:, start : end + 1]
    np.testing.assert_allclose(fractions[:, start : end + 1], block / block.sum(1, keepdims=True))


@pytest.mark.parametrize(("n", "parts"), [(0, 3), (1, 2), (7, 4), (10, 6)])
def test_outcomes_are_every_vote_vector_once(n, parts):
    every = outcomes(n, parts)
    assert every.shape == (comb(n + parts - 1, parts - 1), parts)
    assert np.all(every.sum(axis=1) == n) and np.all(every >= 0)
    assert len({tuple(row) for row in every}) == len(every)


def test_predictive_pieces_rebuild_the_likelihood_and_sum_to_one():
    alpha = np.array([[0.3, 2.0, 7.5]])
    n = 9
    every = outcomes(n, 3)
    rising = log_rising_table(alpha, n)[0]
    log_p = log_multinomial_coefficient(every) + log_normaliser(alpha, n)[0]
    log_p = log_p + sum(rising[a, every[:, a]] for a in range(3))
    direct = numpy_log_likelihood(every, np.broadcast_to(alpha, every.shape), [(0, 2)])[:, 0]
    np.testing.assert_allclose(log_p, direct, rtol=1e-12)
    assert np.exp(log_p).sum() == pytest.approx(1.0, rel=1e-12)


def test_answer_marginal_is_the_beta_binomial_mixture():
    rng = np.random.default_rng(2)
    n_votes = np.array([0, 5, 40])
    alpha, rest = rng.uniform(0.5, 30, (3, 4)), rng.uniform(0.5, 30, (3, 4))
    pmf = answer_marginal_pmf(n_votes, alpha, rest)
    assert pmf.shape == (3, 41)
    for g, n in enumerate(n_votes):
        k = np.arange(n + 1)
        expected = np.mean(
            [stats.betabinom.pmf(k, n, a, b) for a, b in zip(alpha[g], rest[g], strict=True)], 0
        )
        np.testing.assert_allclose(pmf[g, : n + 1], expected, rtol=1e-10)
        assert np.all(pmf[g, n + 1 :] == 0.0)


def test_sampled_votes_follow_their_dirichlet_multinomial():
    alpha = np.array([[2.0, 6.0], [0.01, 0.01]])
    votes = sample_votes(alpha, 10, 20_000, np.random.default_rng(3))
    assert votes.shape == (2, 20_000, 2) and np.all(votes.sum(axis=-1) == 10)
    frequencies = np.bincount(votes[0, :, 0], minlength=11) / 20_000
    np.testing.assert_allclose(
        frequencies, stats.betabinom.pmf(np.arange(11), 10, 2.0, 6.0), atol=0.01
    )
    # Tiny concentrations put nearly every vote on one answer, as often as the pmf says.
    unanimous = stats.betabinom.pmf([0, 10], 10, 0.01, 0.01).sum()
    assert np.mean(np.max(votes[1], axis=-1) == 10) == pytest.approx(unanimous, abs=0.01)


def test_drawn_answers_follow_the_probabilities():
    probabilities = np.array([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    picked = draw_answers(probabilities, 50_000, np.random.default_rng(4))
    assert picked.shape == (2, 50_000)
    np.testing.assert_allclose(
        np.bincount(picked[0], minlength=3) / 50_000, [0.2, 0.5, 0.3], atol=0.01
    )
    assert np.all(picked[1] == 0)
