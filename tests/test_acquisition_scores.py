"""Acquisition scores vs brute-force enumeration, the beta-binomial mixture and their bounds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from gz_experiments.acquisition import (
    MAX_EXACT_OUTCOMES,
    acquisition_column_names,
    acquisition_columns,
    acquisition_scores,
    n_outcomes,
    question_information,
)
from gz_experiments.schema import Schema
from gz_experiments.votes import information as scores_module
from gz_experiments.votes.dirichlet_multinomial import answer_marginal_pmf, outcomes

# `shape` (binary) is asked of everyone, `arms` (3 answers) only after "disk".
TREE = Schema.from_dict(
    {
        "name": "toy",
        "questions": [
            {"name": "shape", "answers": ["disk", "round"]},
            {"name": "arms", "answers": ["one", "two", "many"], "parents": ["shape_disk"]},
        ],
    }
)


def random_concentrations(shape, seed=0) -> np.ndarray:
    """Concentrations in the model head's range (1, 101)."""
    return 1 + 100 * np.random.default_rng(seed).random(shape)


def brute_force(alpha: np.ndarray, n: int) -> tuple[float, float]:
    """(BALD, predictive entropy) of one galaxy, alpha (samples, answers), by listing outcomes."""
    outcomes = [k for k in itertools.product(range(n + 1), repeat=alpha.shape[1]) if sum(k) == n]
    pmf = np.array([stats.dirichlet_multinomial.pmf(outcomes, a, n) for a in alpha])
    assert np.allclose(pmf.sum(axis=1), 1.0)
    mixture = pmf.mean(axis=0)
    entropy = -np.sum(mixture * np.log(mixture))
    return entropy + np.mean(np.sum(pmf * np.log(pmf), axis=1)), entropy


def mirrored(separation: float, n_answers: int = 2, total: float = 20.0) -> np.ndarray:
    """Two samples whose fractions part from uniform as `separation` grows, (1, 2, answers)."""
    fractions = np.full(n_answers, 1.0 / n_answers)
    fractions[0] += separation
    fractions[1] -= separation
    return total * np.stack([fractions, fractions[::-1]])[None]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("n_answers", [2, 3])
@pytest.mark.parametrize("n_samples", [1, 2, 3, 4])
def test_exact_matches_brute_force_enumeration(n, n_answers, n_samples):
    alpha = random_concentrations((3, n_samples, n_answers), seed=n * 100 + n_answers * 10)
    alpha[0] /= 50  # concentrations below 1 too: votes pile up on one answer
    bald, entropy = question_information(alpha, n)
    expected = np.array([brute_force(a, n) for a in alpha])
    np.testing.assert_allclose(bald, expected[:, 0], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(entropy, expected[:, 1], rtol=1e-9, atol=1e-10)
    assert n_outcomes(n, n_answers) == len(outcomes(n, n_answers))


def test_binary_question_equals_beta_binomial_mixture():
    alpha = random_concentrations((5, 4, 2), seed=1)
    n = 25
    n_votes = np.full(len(alpha), n)
    mixture = answer_marginal_pmf(n_votes, alpha[..., 0], alpha[..., 1])
    per_sample = [
        answer_marginal_pmf(n_votes, alpha[:, [s], 0], alpha[:, [s], 1])
        for s in range(alpha.shape[1])
    ]
    entropy = -np.sum(mixture * np.log(mixture), axis=1)
    mean_sample_entropy = np.mean([-np.sum(p * np.log(p), axis=1) for p in per_sample], axis=0)
    bald, predicted_entropy = question_information(alpha, n)
    np.testing.assert_allclose(predicted_entropy, entropy, rtol=1e-10)
    np.testing.assert_allclose(bald, entropy - mean_sample_entropy, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("n_answers", [2, 3, 6])
def test_identical_samples_carry_no_information(n_answers):
    alpha = np.repeat(random_concentrations((4, 1, n_answers), seed=2), 5, axis=1)
    alpha[0] = 1e-3  # and a nearly degenerate galaxy
    bald, entropy = question_information(alpha, 10)
    np.testing.assert_allclose(bald, 0.0, atol=1e-10)
    assert np.all(entropy[1:] > 0.1)


@pytest.mark.parametrize("max_exact_outcomes", [MAX_EXACT_OUTCOMES, 1], ids=["exact", "mc"])
def test_bald_is_between_zero_and_predictive_entropy(max_exact_outcomes):
    alpha = random_concentrations((20, 5, 3), seed=3)
    alpha[:10] /= np.random.default_rng(4).uniform(1, 100, size=(10, 5, 1))  # spread samples
    bald, entropy = question_information(alpha, 8, max_exact_outcomes=max_exact_outcomes)
    assert np.all(bald >= 0)
    assert np.all(bald <= entropy)
    assert np.all(bald[:10] > 0)


@pytest.mark.parametrize("n_answers", [2, 3])
def test_bald_grows_as_samples_disagree_more(n_answers):
    separations = [0.0, 0.05, 0.1, 0.2, 0.3]
    bald = [question_information(mirrored(d, n_answers), 10)[0][0] for d in separations]
    assert bald[0] == pytest.approx(0.0, abs=1e-10)
    assert np.all(np.diff(bald) > 0)


def test_monte_carlo_just_over_the_cap_agrees_with_exact():
    n = 315  # C(317, 2) = 50,086 outcomes for 3 answers: the first N over the cap
    assert n_outcomes(n, 3) > MAX_EXACT_OUTCOMES >= n_outcomes(n - 1, 3)
    alpha = random_concentrations((3, 4, 3), seed=5)
    alpha[0, :2] /= 20  # one galaxy whose samples disagree strongly
    estimate = np.array(question_information(alpha, n))
    exact = np.array(question_information(alpha, n, max_exact_outcomes=n_outcomes(n, 3)))
    # ~4 standard errors at the default draws; and not equal, so the Monte-Carlo path did run.
    np.testing.assert_allclose(estimate, exact, atol=0.03, rtol=0.005)
    assert not np.allclose(estimate, exact, rtol=0, atol=1e-6)


def test_monte_carlo_is_seeded_and_independent_of_the_batch():
    alpha = random_concentrations((4, 3, 4), seed=6)
    first = question_information(alpha, 12, max_exact_outcomes=10, mc_draws=200, seed=7)
    again = question_information(alpha[::-1], 12, max_exact_outcomes=10, mc_draws=200, seed=7)
    other = question_information(alpha, 12, max_exact_outcomes=10, mc_draws=200, seed=8)
    np.testing.assert_array_equal(first, np.asarray(again)[:, ::-1])
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("max_exact_outcomes", [MAX_EXACT_OUTCOMES, 10], ids=["exact", "mc"])
def test_blocks_do_not_change_the_result(monkeypatch, max_exact_outcomes):
    alpha = random_concentrations((9, 3, 3), seed=9)
    whole = question_information(alpha, 6, max_exact_outcomes=max_exact_outcomes)
    monkeypatch.setattr(scores_module, "_BLOCK_ELEMENTS", 7)  # 1 galaxy x 2 outcomes per block
    blocked = question_information(alpha, 6, max_exact_outcomes=max_exact_outcomes)
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-14)


def test_extreme_concentrations_stay_finite():
    alpha = np.array([[[1e-9, 1e-9, 1e-9], [1e6, 1.0, 1.0]], [[1e-3, 5.0, 1e4], [2.0, 2.0, 2.0]]])
    for cap in (MAX_EXACT_OUTCOMES, 1):
        bald, entropy = question_information(alpha, 20, max_exact_outcomes=cap)
        assert np.all(np.isfinite(bald)) and np.all(np.isfinite(entropy))


# ---- combined scores and columns ------------------------------------------------------------


def tree_concentrations() -> np.ndarray:
    """Galaxy 0 is surely round (arms almost never asked), galaxy 1 surely disk; both have arms
    samples that disagree strongly."""
    conc = random_concentrations((2, 4, 5), seed=10)
    conc[:, :, 2:] = [[50, 1, 1], [1, 50, 1], [1, 1, 50], [50, 1, 1]]
    conc[0, :, :2] = [1e-9, 100]
    conc[1, :, :2] = [100, 1e-9]
    return conc


@pytest.mark.parametrize("kind", ["bald", "entropy"])
def test_combined_score_weights_questions_by_p_asked(kind):
    conc = tree_concentrations()
    result = acquisition_scores(conc, TREE, kind)
    p_disk = np.mean(conc[:, :, 0] / conc[:, :, :2].sum(axis=2), axis=1)
    np.testing.assert_allclose(result.weights, np.stack([np.ones(2), p_disk], axis=1))
    np.testing.assert_allclose(result.combined, (result.weights * result.per_question).sum(1))
    assert result.questions == ("shape", "arms")
    assert result.per_question[0, 1] > 0.5  # the arms samples disagree...
    # ...but a question the galaxy never reaches adds nothing to its score.
    assert result.combined[0] == pytest.approx(result.per_question[0, 0], abs=1e-9)
    assert result.combined[1] == pytest.approx(result.per_question[1].sum(), rel=1e-9)


def test_scores_on_chosen_questions_with_their_own_n():
    conc = tree_concentrations()
    result = acquisition_scores(conc, TREE, n_volunteers={"arms": 3}, questions=["arms"])
    bald, _ = question_information(conc[:, :, 2:], 3)
    np.testing.assert_allclose(result.per_question[:, 0], bald)
    np.testing.assert_allclose(result.combined, result.weights[:, 0] * bald)


def test_random_scores_are_seeded_and_reproducible():
    conc = random_concentrations((6, 3, 5), seed=11)
    first = acquisition_scores(conc, TREE, "random", seed=3)
    again = acquisition_scores(conc, TREE, "random", seed=3)
    other = acquisition_scores(conc, TREE, "random", seed=4)
    assert first.per_question.shape == (6, 2) and first.combined.shape == (6,)
    np.testing.assert_array_equal(first.per_question, again.per_question)
    np.testing.assert_array_equal(first.combined, again.combined)
    assert not np.array_equal(first.combined, other.combined)
    assert np.all((first.per_question >= 0) & (first.per_question < 1))


def test_acquisition_columns_names_types_and_values():
    conc = random_concentrations((5, 3, 5), seed=12)
    columns = acquisition_columns(conc, TREE)
    assert list(columns) == [
        "shape_bald",
        "arms_bald",
        "shape_predictive_entropy",
        "arms_predictive_entropy",
        "acquisition_bald",
    ]
    assert all(v.dtype == np.float32 and v.shape == (5,) for v in columns.values())
    bald = acquisition_scores(conc, TREE, "bald")
    entropy = acquisition_scores(conc, TREE, "entropy")
    np.testing.assert_allclose(columns["arms_bald"], bald.per_question[:, 1], rtol=1e-6)
    np.testing.assert_allclose(columns["shape_predictive_entropy"], entropy.per_question[:, 0])
    np.testing.assert_allclose(columns["acquisition_bald"], bald.combined, rtol=1e-6)
    only_arms = acquisition_columns(conc, TREE, n_volunteers=4, questions=["arms"])
    assert list(only_arms) == ["arms_bald", "arms_predictive_entropy", "acquisition_bald"]
    # the names alone (what a table's header needs) come in the same order
    assert acquisition_column_names(TREE) == list(columns)
    assert acquisition_column_names(TREE, ["arms"]) == list(only_arms)


def test_no_galaxies_give_empty_scores():
    result = acquisition_scores(np.ones((0, 3, 5)), TREE)
    assert result.per_question.shape == (0, 2) and result.combined.shape == (0,)


# ---- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: acquisition_scores(c[:, 0], TREE), r"shape \(galaxies, n_samples, 5\)"),
        (lambda c: acquisition_scores(c[..., :4], TREE), r"got \(2, 3, 4\)"),
        (lambda c: acquisition_scores(np.swapaxes(c, 1, 2), TREE), "n_samples, 5"),
        (lambda c: acquisition_scores(c * 0, TREE), "finite and > 0"),
        (lambda c: acquisition_scores(c, TREE, "margin"), "unknown acquisition kind"),
        (lambda c: acquisition_scores(c, TREE, n_volunteers=0), "n_volunteers must be"),
        (lambda c: acquisition_scores(c, TREE, n_volunteers=2.5), "n_volunteers must be"),
        (lambda c: acquisition_scores(c, TREE, n_volunteers=True), "n_volunteers must be"),
        (lambda c: acquisition_scores(c, TREE, questions=["bar"]), r"no question\(s\) \['bar'\]"),
        (lambda c: acquisition_scores(c, TREE, questions=[]), "at least one question"),
        (lambda c: acquisition_scores(c, TREE, questions=["arms", "arms"]), "each once"),
        (lambda c: acquisition_columns(c, TREE, {"shape": 5, "bar": 5}), r"\['bar'\] not in"),
        (lambda c: acquisition_columns(c, TREE, {"shape": 5}), r"no N for .*\['arms'\]"),
        (lambda c: acquisition_columns(c, TREE, {"shape": 5, "arms": -1}), "n_volunteers\\['arms"),
        (lambda c: question_information(c, 5, mc_draws=0), "mc_draws must be"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(random_concentrations((2, 3, 5), seed=13))
