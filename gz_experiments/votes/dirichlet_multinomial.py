"""The vote model, in one place: a question's answers are a Dirichlet-multinomial over its volunteers.

A galaxy's answer probabilities p for one question are Dirichlet(alpha); N volunteers then give
vote counts k (sum k_a = N) that are multinomial(N, p). With A = sum alpha_a, integrating p out:

    log DM(k | N, alpha) = log multinomial coefficient(k) - log rising(A, N) + sum_a log rising(alpha_a, k_a)
    log multinomial coefficient(k) = lnG(N + 1) - sum_a lnG(k_a + 1)
    log rising(x, j) = lnG(x + j) - lnG(x)          (log of x (x + 1) ... (x + j - 1))

Everything that computes with this assumption goes through this module:

- the training loss (TensorFlow) and the NumPy log-likelihood: `log_likelihood` is the formula
  once, written against a `Backend` (lgamma and "sum answers into their question");
- the expected vote fractions alpha_a / A (`expected_fractions`);
- the predictive distribution of the next N votes: every outcome (`outcomes`) and its pieces
  (`log_multinomial_coefficient`, `log_rising_table`, `log_normaliser`) for BALD and predictive
  entropy, and one answer's beta-binomial marginal (`answer_marginal_pmf`) for coverage;
- drawing votes: from a Dirichlet-multinomial (`sample_votes`) and, for the simulator, one
  volunteer's answer from known probabilities (`draw_answers`).

A question nobody answered (N = 0) has log-likelihood exactly 0 and gradient exactly 0: every
rising factorial of length 0 is lnG(x) - lnG(x). NumPy here; TensorFlow only inside
`tensorflow_backend`, so NumPy consumers never load it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import gammaln

from gz_experiments.schema import Schema

QuestionGroups = Sequence[tuple[int, int]]  # (first, last) answer index of each question


@dataclass(frozen=True)
class Backend:
    """The two operations the formula needs: `lgamma`, and `to_questions`, which sums a
    (..., n_answers) array of per-answer values into (..., n_questions)."""

    lgamma: Callable
    to_questions: Callable


def question_groups(schema_or_groups: Schema | QuestionGroups) -> list[tuple[int, int]]:
    if isinstance(schema_or_groups, Schema):
        return list(schema_or_groups.question_index_groups)
    return [(int(first), int(last)) for first, last in schema_or_groups]


def answers_to_questions(groups: QuestionGroups) -> np.ndarray:
    """The (n_answers, n_questions) 0/1 matrix that sums answers into their question."""
    n_answers = groups[-1][1] + 1
    matrix = np.zeros((n_answers, len(groups)), dtype=np.float64)
    for q, (first, last) in enumerate(groups):
        matrix[first : last + 1, q] = 1.0
    return matrix


def numpy_backend(schema_or_groups: Schema | QuestionGroups) -> Backend:
    matrix = answers_to_questions(question_groups(schema_or_groups))
    return Backend(lgamma=gammaln, to_questions=lambda values: values @ matrix)


def tensorflow_backend(schema_or_groups: Schema | QuestionGroups, dtype) -> Backend:
    import tensorflow as tf

    matrix = tf.constant(answers_to_questions(question_groups(schema_or_groups)), dtype=dtype)
    return Backend(lgamma=tf.math.lgamma, to_questions=lambda values: tf.matmul(values, matrix))


# The backend of a single question: its answers are the last axis.
ONE_QUESTION = Backend(lgamma=gammaln, to_questions=lambda values: values.sum(axis=-1))


def log_rising(x, j, lgamma: Callable = gammaln):
    """log x (x + 1) ... (x + j - 1), elementwise; exactly 0 for j = 0."""
    return lgamma(x + j) - lgamma(x)


def log_likelihood(counts, concentrations, backend: Backend):
    """log DM(k | N, alpha) per question, (..., n_questions), from counts and concentrations
    (..., n_answers) of the same dtype."""
    lgamma, to_questions = backend.lgamma, backend.to_questions
    total, alpha_total = to_questions(counts), to_questions(concentrations)
    log_coefficient = lgamma(total + 1.0) - to_questions(lgamma(counts + 1.0))
    return (
        log_coefficient
        - log_rising(alpha_total, total, lgamma)
        + to_questions(log_rising(concentrations, counts, lgamma))
    )


def numpy_log_likelihood(counts, concentrations, schema_or_groups) -> np.ndarray:
    """`log_likelihood` in float64 NumPy, (..., n_questions)."""
    counts = np.asarray(counts, dtype=np.float64)
    concentrations = np.asarray(concentrations, dtype=np.float64)
    return log_likelihood(counts, concentrations, numpy_backend(schema_or_groups))


def expected_fractions(concentrations: np.ndarray, schema: Schema) -> np.ndarray:
    """The Dirichlet mean alpha_a / A of every answer within its question, same shape as
    `concentrations` (..., n_answers): the vote fractions a model expects."""
    return schema.fractions_within_questions(concentrations)


# ---- the predictive distribution of the next N votes ----------------------------------------


@lru_cache(maxsize=16)
def outcomes(n: int, parts: int) -> np.ndarray:
    """Every vote-count vector of n votes over `parts` answers, (n_outcomes, parts), read-only."""
    # Stars and bars: choosing where the parts - 1 bars go among n + parts - 1 slots fixes one.
    bars = np.array(list(itertools.combinations(range(n + parts - 1), parts - 1)), dtype=np.int64)
    bars = bars.reshape(-1, parts - 1)
    edges = np.pad(bars, ((0, 0), (1, 0)), constant_values=-1)
    edges = np.pad(edges, ((0, 0), (0, 1)), constant_values=n + parts - 1)
    counts = np.diff(edges, axis=1) - 1
    counts.flags.writeable = False
    return counts


def log_multinomial_coefficient(counts: np.ndarray) -> np.ndarray:
    """log N! / prod k_a! of count vectors (..., answers), shape (...)."""
    counts = np.asarray(counts)
    return gammaln(counts.sum(axis=-1) + 1) - gammaln(counts + 1).sum(axis=-1)


def log_rising_table(alpha: np.ndarray, n: int) -> np.ndarray:
    """`log_rising(alpha, j)` for j = 0..n, shape alpha.shape + (n + 1,): a vote vector's
    log-probability is then a sum of look-ups, one per answer."""
    return log_rising(alpha[..., None], np.arange(n + 1))


def log_normaliser(alpha: np.ndarray, n: int) -> np.ndarray:
    """-log rising(A, n) over the last axis of alpha, shape alpha.shape[:-1]."""
    return -log_rising(alpha.sum(axis=-1), n)


def answer_marginal_pmf(n_votes: np.ndarray, alpha: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """P(k of the N votes go to one answer), k = 0..max(N), under the equal mixture over MC
    samples: the answer's marginal is a Dirichlet-multinomial of two parts (a beta-binomial),
    the answer (alpha) against all the others (`rest` = A - alpha).

    n_votes (galaxies,), alpha and rest (galaxies, samples) -> (galaxies, max N + 1), zero for k > N.
    """
    n = np.asarray(n_votes, dtype=np.float64)[:, None, None]
    k = np.arange(int(n.max(initial=0)) + 1, dtype=np.float64)[None, None, :]
    valid = k <= n
    k_in = np.where(valid, k, 0.0)
    # Counts (galaxies, 1, k, 2) and concentrations (galaxies, samples, 1, 2) broadcast inside
    # the formula, so only the terms that need both are computed at full size.
    counts = np.stack(np.broadcast_arrays(k_in, n - k_in), axis=-1)
    alpha = np.asarray(alpha, dtype=np.float64)[:, :, None]
    rest = np.asarray(rest, dtype=np.float64)[:, :, None]
    concentrations = np.stack([alpha, rest], axis=-1)
    log_pmf = log_likelihood(counts, concentrations, ONE_QUESTION)
    return np.where(valid, np.exp(log_pmf), 0.0).mean(axis=1)


# ---- drawing votes ---------------------------------------------------------------------------


def sample_votes(alpha: np.ndarray, n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Vote counts (samples, draws, answers) of n volunteers from each sample's
    Dirichlet-multinomial, alpha (samples, answers)."""
    # Generator.dirichlet, unlike normalised gamma draws, stays exact for tiny concentrations.
    fractions = np.stack([rng.dirichlet(a, size=draws) for a in alpha])
    return rng.multinomial(n, fractions)


def draw_answers(
    probabilities: np.ndarray, n_volunteers: int, rng: np.random.Generator
) -> np.ndarray:
    """Each of `n_volunteers` volunteers' answer (its position in the question) drawn from a
    question's answer probabilities (galaxies, answers): (galaxies, n_volunteers)."""
    cdf = np.cumsum(probabilities, axis=1)
    cdf[:, -1] = 1.0  # rounding must never push a draw past the last answer
    draws = rng.random((len(probabilities), n_volunteers))
    return (draws[..., None] >= cdf[:, None, :]).sum(axis=-1)
