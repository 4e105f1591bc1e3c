"""Acquisition scores: which galaxies would the next volunteers' votes teach the model most about?

GZ DECaLS (Walmsley et al. 2020; 2022) sent volunteers the galaxies with the highest BALD score,
estimated from MC-dropout samples. For question q, MC sample s predicts Dirichlet concentrations
alpha_s over q's answers; N volunteers answering q then give a vote-count vector k (one of the
compositions of N into |q| parts) with the Dirichlet-multinomial pmf DM(k | N, alpha_s), and the
model's predictive is the equal mixture over samples. Over the outcomes k, in nats:

    predictive entropy  H_q = H[ mean_s DM(k | N, alpha_s) ]
    BALD                B_q = H_q - mean_s H[ DM(k | N, alpha_s) ] = mean_s KL( DM_s || mixture )

BALD is the mutual information between the next votes and the model's parameters: high only where
the samples disagree. A galaxy every sample calls 50/50 has a high entropy but zero BALD, because
more votes would not change the model.

**Exact** while a question has at most `max_exact_outcomes` (default `MAX_EXACT_OUTCOMES`) outcomes
C(N + |q| - 1, |q| - 1): every composition is enumerated and the sums are taken in log space.
**Monte Carlo** above it, with `mc_draws` (default `MC_DRAWS`) vote vectors drawn from each MC
sample's Dirichlet-multinomial (stratified: equal draws per mixture component). Each drawn k keeps
its exact log-probability under every sample, so only the outer expectation is estimated:
H_q ~ -mean log mixture(k) and B_q ~ mean [log DM_s(k) - log mixture(k)] over the draws k ~ DM_s.
The generator is re-seeded for every galaxy, so a galaxy's estimate depends only on its own
concentrations and the seed, never on the batch it was scored in.

Pure NumPy / SciPy: no TensorFlow, no MLflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from math import comb

import numpy as np
from scipy.special import logsumexp

from gz_experiments.schema import Question, Schema
from gz_experiments.votes.dirichlet_multinomial import (
    expected_fractions,
    log_multinomial_coefficient,
    log_normaliser,
    log_rising_table,
    outcomes,
    sample_votes,
)

KINDS = ("bald", "entropy", "random")

# Ten volunteers keep every question of the built-in trees exact (at most 6 answers: C(15, 5) =
# 3,003 outcomes, ~1 ms per galaxy at 5 samples on one core), which a served model can afford per
# request; the paper's N = 40 would need C(45, 5) = 1.2M outcomes for a 6-answer question. BALD
# grows with N but saturates (infinitely many votes reveal only the answer probabilities), and on
# simulated MC-dropout concentrations the galaxies' BALD at N = 10 and N = 40 had a Spearman
# correlation above 0.99 for 2 to 6 answers: N = 10 ranks galaxies as N = 40 would. Offline, pass a
# larger N or a per-question dict.
DEFAULT_N_VOLUNTEERS = 10
# Exact costs grow like N^(|q| - 1); Monte Carlo costs a fixed ~8 ms per galaxy at 5 samples. At
# 50,000 outcomes the exact pass takes ~20 ms per galaxy: up to about twice the Monte-Carlo price, a
# noise-free score is worth paying for; beyond it exact quickly becomes many times dearer.
MAX_EXACT_OUTCOMES = 50_000
# Draws per MC sample. For a 6-answer question at N = 40 with 5 samples the standard errors were
# ~0.01 nats (BALD) and ~0.015 nats (entropy), against a spread of BALD across galaxies of ~0.4.
MC_DRAWS = 1_000
# Elements (float64) per working array: galaxies and outcomes are processed in blocks this size,
# so a few arrays of 8 MB are alive at a time whatever the number of galaxies.
_BLOCK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class AcquisitionScores:
    """One kind of score for each galaxy, per question and combined over the questions."""

    kind: str
    questions: tuple[str, ...]
    per_question: np.ndarray  # (galaxies, questions); nats for "bald" and "entropy"
    weights: np.ndarray  # (galaxies, questions): p_asked of each question
    combined: np.ndarray  # (galaxies,): sum of weights * per_question ("random": its own draw)


def n_outcomes(n_volunteers: int, n_answers: int) -> int:
    """How many vote-count vectors N volunteers can give a question with `n_answers` answers."""
    return comb(n_volunteers + n_answers - 1, n_answers - 1)


def question_information(
    concentrations: np.ndarray,
    n_volunteers: int = DEFAULT_N_VOLUNTEERS,
    *,
    seed: int = 0,
    max_exact_outcomes: int = MAX_EXACT_OUTCOMES,
    mc_draws: int = MC_DRAWS,
) -> tuple[np.ndarray, np.ndarray]:
    """BALD and predictive entropy (nats, each (galaxies,)) of one question, from the
    concentrations (galaxies, n_samples, answers) of its answers; exact or Monte Carlo as the
    module docstring says."""
    alpha = _checked_concentrations(concentrations, None)
    n = _checked_count(n_volunteers, "n_volunteers")
    _checked_count(max_exact_outcomes, "max_exact_outcomes")
    _checked_count(mc_draws, "mc_draws")
    n_galaxies, n_samples, n_answers = alpha.shape
    exact = n_outcomes(n, n_answers) <= max_exact_outcomes
    # Galaxies per block: the exact pass works on (galaxies, samples, outcomes) arrays (and splits
    # the outcomes further when one galaxy is too many), Monte Carlo on (galaxies, samples, draws,
    # samples) ones.
    per_galaxy = n_samples * (n_outcomes(n, n_answers) if exact else n_samples * mc_draws)
    rows = max(1, _BLOCK_ELEMENTS // per_galaxy)
    bald, entropy = np.zeros(n_galaxies), np.zeros(n_galaxies)
    for start in range(0, n_galaxies, rows):
        block = slice(start, start + rows)
        if exact:
            bald[block], entropy[block] = _exact(alpha[block], n)
        else:
            bald[block], entropy[block] = _monte_carlo(alpha[block], n, mc_draws, seed)
    # Both are >= 0 in exact arithmetic; rounding (or Monte-Carlo noise, for BALD) can dip below.
    return np.maximum(bald, 0.0), np.maximum(entropy, 0.0)


def acquisition_scores(
    concentrations: np.ndarray,
    schema: Schema,
    kind: str = "bald",
    *,
    n_volunteers: int | Mapping[str, int] = DEFAULT_N_VOLUNTEERS,
    questions: Iterable[str] | None = None,
    seed: int = 0,
) -> AcquisitionScores:
    """Scores of `kind` for concentrations (galaxies, n_samples, n_answers) in schema label order.

    "bald" and "entropy" are `question_information` per question; the combined score sums them
    weighted by p_asked (`Schema.p_asked` of the mean-over-samples Dirichlet-mean fractions, as in
    the prediction table), so a question the galaxy rarely reaches counts little. "random" is the
    baseline: seeded uniform [0, 1) scores, and a combined score drawn on its own so that it ranks
    galaxies uniformly. `n_volunteers` is one N for every question or a dict covering each scored
    question; `questions` defaults to the whole tree.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown acquisition kind {kind!r}: use one of {', '.join(KINDS)}")
    conc = _checked_concentrations(concentrations, schema.n_answers)
    chosen = _selected_questions(schema, questions)
    n_by_question = _volunteers_per_question(n_volunteers, chosen, schema)
    weights = _weights(conc, schema, chosen)
    names = tuple(q.name for q in chosen)
    if kind == "random":
        rng = np.random.default_rng(seed)
        per_question, combined = rng.random(weights.shape), rng.random(len(conc))
        return AcquisitionScores(kind, names, per_question, weights, combined)
    bald, entropy = _information(conc, chosen, n_by_question, seed)
    per_question = bald if kind == "bald" else entropy
    return AcquisitionScores(kind, names, per_question, weights, (weights * per_question).sum(1))


def acquisition_columns(
    concentrations: np.ndarray,
    schema: Schema,
    n_volunteers: int | Mapping[str, int] = DEFAULT_N_VOLUNTEERS,
    questions: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """Prediction-table columns (float32, one value per galaxy) from concentrations
    (galaxies, n_samples, n_answers), for each scored question (default: all) then combined:

    - `{question}_bald`: BALD in nats, the mutual information between the votes of the next N
      volunteers who answer the question and the model's parameters, estimated from the MC
      samples. High where the samples disagree, so more votes would change the model; 0 when they
      agree, however uncertain the answer. At most `{question}_predictive_entropy`.
    - `{question}_predictive_entropy`: entropy in nats of the predicted vote counts of those N
      volunteers (the equal mixture over samples of Dirichlet-multinomials). High for any uncertain
      galaxy, including one whose answer is genuinely ambiguous.
    - `acquisition_bald`: the sum over the scored questions of `{question}_p_asked *
      {question}_bald`, the BALD of a galaxy's whole classification if a question's votes count as
      often as volunteers reach it. Rank galaxies by it (highest first) to choose which to send to
      volunteers next.

    N is `n_volunteers` (default 10) per question; questions with more than 50,000 possible vote
    vectors use a seeded Monte-Carlo estimate (see `gz_experiments.votes.information`).
    """
    conc = _checked_concentrations(concentrations, schema.n_answers)
    chosen = _selected_questions(schema, questions)
    if "acquisition" in {q.name for q in chosen}:
        raise ValueError(
            "a question named 'acquisition' would clash with the acquisition_bald column"
        )
    n_by_question = _volunteers_per_question(n_volunteers, chosen, schema)
    bald, entropy = _information(conc, chosen, n_by_question, seed=0)
    columns = {f"{q.name}_bald": bald[:, i] for i, q in enumerate(chosen)}
    columns |= {f"{q.name}_predictive_entropy": entropy[:, i] for i, q in enumerate(chosen)}
    columns["acquisition_bald"] = (_weights(conc, schema, chosen) * bald).sum(1)
    return {name: values.astype(np.float32) for name, values in columns.items()}


def acquisition_column_names(schema: Schema, questions: Iterable[str] | None = None) -> list[str]:
    """The names `acquisition_columns` returns, in its order, without computing anything."""
    chosen = [q.name for q in _selected_questions(schema, questions)]
    names = [f"{name}_bald" for name in chosen]
    return names + [f"{name}_predictive_entropy" for name in chosen] + ["acquisition_bald"]


# ---- per-question computation ---------------------------------------------------------------


def _information(conc, chosen: list[Question], n_by_question: dict[str, int], seed: int):
    """(bald, entropy), each (galaxies, len(chosen))."""
    pairs = [
        question_information(conc[:, :, q.start : q.end + 1], n_by_question[q.name], seed=seed)
        for q in chosen
    ]
    return np.stack([b for b, _ in pairs], axis=1), np.stack([h for _, h in pairs], axis=1)


def _exact(alpha: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (bald, entropy) for alpha (galaxies, samples, answers), outcomes in blocks."""
    n_galaxies, n_samples, n_answers = alpha.shape
    every_outcome = outcomes(n, n_answers)
    rising, log_norm = log_rising_table(alpha, n), log_normaliser(alpha, n)
    log_coef = log_multinomial_coefficient(every_outcome)
    block = max(1, _BLOCK_ELEMENTS // (n_galaxies * n_samples))
    bald, entropy = np.zeros(n_galaxies), np.zeros(n_galaxies)
    for start in range(0, len(every_outcome), block):
        k = every_outcome[start : start + block]
        log_p = log_norm[..., None] + log_coef[start : start + block]  # (galaxies, samples, k)
        for a in range(n_answers):
            log_p += rising[:, :, a, k[:, a]]
        # log-sum-exp over samples by hand: it yields exp(log_p) on the way, and this loop is the
        # hot path (three times faster than scipy's logsumexp followed by np.exp).
        shift = log_p.max(axis=1)  # (galaxies, k)
        scaled = np.exp(log_p - shift[:, None])
        log_mix = shift + np.log(scaled.mean(axis=1))
        entropy -= (np.exp(log_mix) * log_mix).sum(axis=1)
        p = scaled * np.exp(shift)[:, None]
        bald += (p * (log_p - log_mix[:, None])).sum(axis=2).mean(axis=1)
    return bald, entropy


def _monte_carlo(alpha: np.ndarray, n: int, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Estimated (bald, entropy) for alpha (galaxies, samples, answers)."""
    n_galaxies, n_samples, n_answers = alpha.shape
    # (galaxies, samples, draws, answers)
    # Re-seeded per galaxy: its estimate must not depend on the batch it was scored in.
    counts = np.stack([sample_votes(a, n, draws, np.random.default_rng(seed)) for a in alpha])
    rising, log_norm = log_rising_table(alpha, n), log_normaliser(alpha, n)
    # log_p[g, s, d, t]: log-probability of draw d of sample s under sample t.
    log_coef = log_multinomial_coefficient(counts)
    log_p = log_coef[..., None] + log_norm[:, None, None, :]
    rows = np.arange(n_galaxies)[:, None, None]
    for a in range(n_answers):
        by_count = np.swapaxes(rising[:, :, a, :], 1, 2)  # (galaxies, n + 1, samples)
        log_p += by_count[rows, counts[..., a]]
    own = np.diagonal(log_p, axis1=1, axis2=3)  # each draw under the sample that drew it
    log_mix = logsumexp(log_p, axis=-1) - np.log(n_samples)
    entropy = -log_mix.mean(axis=(1, 2))
    return own.mean(axis=(1, 2)) + entropy, entropy


# ---- weights and validation ---------------------------------------------------------------------


def _weights(conc: np.ndarray, schema: Schema, chosen: list[Question]) -> np.ndarray:
    """p_asked (galaxies, chosen), computed exactly as the prediction table's `_p_asked` columns."""
    expected = expected_fractions(conc, schema).mean(axis=1)
    return schema.p_asked(expected)[:, [q.index for q in chosen]]


def _checked_concentrations(concentrations, n_answers: int | None) -> np.ndarray:
    conc = np.asarray(concentrations, dtype=np.float64)
    answers = "n_answers" if n_answers is None else str(n_answers)
    if (
        conc.ndim != 3
        or conc.shape[1] < 1
        or conc.shape[2] < 1
        or (n_answers is not None and conc.shape[2] != n_answers)
    ):
        raise ValueError(
            f"concentrations must have shape (galaxies, n_samples, {answers}) as predict.py "
            f"samples them, got {conc.shape}"
        )
    if not np.all(np.isfinite(conc) & (conc > 0)):
        raise ValueError("concentrations must be finite and > 0 (Dirichlet parameters)")
    return conc


def _checked_count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def _selected_questions(schema: Schema, questions: Iterable[str] | None) -> list[Question]:
    if questions is None:
        return list(schema.questions)
    names = [questions] if isinstance(questions, str) else list(questions)
    known = [q.name for q in schema.questions]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"schema {schema.name!r} has no question(s) {unknown}; it has {known}")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"questions must name at least one question, each once, got {names}")
    return [schema.question(name) for name in names]


def _volunteers_per_question(n_volunteers, chosen: list[Question], schema: Schema) -> dict:
    names = [q.name for q in chosen]
    if not isinstance(n_volunteers, Mapping):
        return dict.fromkeys(names, _checked_count(n_volunteers, "n_volunteers"))
    unknown = sorted(set(n_volunteers) - {q.name for q in schema.questions})
    if unknown:
        raise ValueError(f"n_volunteers names question(s) {unknown} not in schema {schema.name!r}")
    missing = [name for name in names if name not in n_volunteers]
    if missing:
        raise ValueError(f"n_volunteers gives no N for scored question(s) {missing}")
    return {name: _checked_count(n_volunteers[name], f"n_volunteers[{name!r}]") for name in names}
