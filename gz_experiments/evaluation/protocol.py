"""The paper's evaluation protocol on arrays: volunteer counts vs predicted Dirichlet concentrations.

Walmsley et al. 2022 (zoobot `evaluate_model.py`, see shared/reference/zoobot_facts.md §6), per
question:

- **which galaxies**: those where at least half of the volunteers would have been asked the
  question (`Schema.p_asked` of the volunteers' own vote fractions >= 0.5) and who got a vote on it;
- **classification**: the most-voted answer vs the answer with the highest predicted fraction;
  accuracy and support-weighted precision / recall / F1, on all those galaxies and on the
  *confident* ones (some answer has a true fraction > 0.8);
- **regression**: mean absolute and root-mean-square error of the vote fractions, per question and
  per answer, for galaxies with >= 20 votes on the question;
- **calibration**: the predictive distribution of a galaxy's votes is the equal mixture over MC
  samples of Dirichlet-multinomials. For each answer its marginal is a beta-binomial
  P(k votes | N). The highest-density set at a nominal level holds the most probable k until
  their mass reaches the level; coverage is the fraction of galaxies whose real count falls
  inside. Discrete sets overshoot the nominal level, so the mean achieved mass is reported too:
  a calibrated model's coverage equals it in expectation. Binary questions use their first
  answer (the second gives the mirror-image set); larger questions pool all their answers.

On simulated data, `truth_metrics` also compares with the simulator's true answer probabilities:
the model's MAE next to the volunteers' own MAE (the floor set by counting noise) and their ratio.

The vote maths come from `votes.dirichlet_multinomial`. Pure NumPy / scikit-learn: no TensorFlow, no MLflow. `evaluation.inputs` produces its
inputs from a model and shards; `evaluation.run` is the step; `tracking/evaluate.py` logs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from gz_experiments.schema import Question, Schema
from gz_experiments.votes.dirichlet_multinomial import answer_marginal_pmf, expected_fractions

MIN_P_ASKED = 0.5
CONFIDENT_FRACTION = 0.8
MIN_VOTES_REGRESSION = 20
COVERAGE_LEVELS = tuple(round(float(x), 2) for x in np.linspace(0.1, 0.95, 18))
LOGGED_COVERAGE_LEVELS = (0.5, 0.8, 0.9, 0.95)


@dataclass
class QuestionEvaluation:
    """Everything measured on one question; `metrics` are the numbers logged to MLflow."""

    question: Question
    metrics: dict[str, float] = field(default_factory=dict)
    confusion: np.ndarray | None = None  # rows = most-voted answer, columns = predicted
    confusion_confident: np.ndarray | None = None
    coverage_observed: np.ndarray | None = None  # per COVERAGE_LEVELS
    coverage_expected: np.ndarray | None = None
    true_fractions: np.ndarray | None = None  # (galaxies with >= 20 votes, answers) for plots
    predicted_fractions: np.ndarray | None = None


@dataclass
class Evaluation:
    schema: Schema
    questions: list[QuestionEvaluation]
    overall: dict[str, float]

    def metrics(self, prefix: str) -> dict[str, float]:
        """Flat `prefix/<question>/<metric>` and `prefix/<metric>` keys, finite values only."""
        out = {f"{prefix}/{k}": v for k, v in self.overall.items()}
        for q in self.questions:
            out.update({f"{prefix}/{q.question.name}/{k}": v for k, v in q.metrics.items()})
        return {k: float(v) for k, v in out.items() if np.isfinite(v)}

    def table(self) -> pd.DataFrame:
        """One row per question, every metric as a column (`all_metrics.csv`)."""
        rows = [{"question": q.question.name, **q.metrics} for q in self.questions]
        return pd.DataFrame(rows).set_index("question")


# ---- predicted fractions --------------------------------------------------------------------


def as_samples(concentrations: np.ndarray) -> np.ndarray:
    """(galaxies, answers) or (galaxies, answers, samples) -> always with a samples axis."""
    conc = np.asarray(concentrations, dtype=np.float64)
    return conc[..., None] if conc.ndim == 2 else conc


def mean_expected_fractions(concentrations: np.ndarray, schema: Schema) -> np.ndarray:
    """Expected vote fraction per answer (the Dirichlet mean within its question) averaged over
    MC samples, shape (galaxies, answers)."""
    conc = np.moveaxis(as_samples(concentrations), -1, 0)  # (samples, galaxies, answers)
    return expected_fractions(conc, schema).mean(axis=0)


# ---- classification and regression ----------------------------------------------------------


def classification_metrics(true_label: np.ndarray, pred_label: np.ndarray, n_classes: int) -> dict:
    """Accuracy and support-weighted precision / recall / F1 (NaN when there are no galaxies)."""
    if len(true_label) == 0:
        return dict.fromkeys(("accuracy", "precision", "recall", "f1"), float("nan"))
    precision, recall, f1, _ = precision_recall_fscore_support(
        true_label, pred_label, labels=range(n_classes), average="weighted", zero_division=0
    )
    accuracy = float(np.mean(true_label == pred_label))
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def confusion_matrix(true_label: np.ndarray, pred_label: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with rows = most-voted answer, columns = predicted answer (all zeros when empty)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (true_label, pred_label), 1)
    return matrix


def regression_metrics(true_fractions: np.ndarray, pred_fractions: np.ndarray) -> dict:
    """MAE and RMSE over galaxies and answers, plus per-answer arrays (NaN when empty)."""
    if len(true_fractions) == 0:
        nan = np.full(true_fractions.shape[1], np.nan)
        return {"mae": float("nan"), "rmse": float("nan"), "answer_mae": nan, "answer_rmse": nan}
    error = pred_fractions - true_fractions
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "answer_mae": np.mean(np.abs(error), axis=0),
        "answer_rmse": np.sqrt(np.mean(error**2, axis=0)),
    }


# ---- calibration ----------------------------------------------------------------------------


def highest_density_sets(pmf: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest sets of most probable counts holding >= `level` of each row's mass.

    Returns a boolean mask like `pmf` and the achieved mass per row.
    """
    order, mass_before = _ranked(pmf)
    return _sets(pmf, order, mass_before, level)


def _ranked(pmf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts by decreasing probability, and the mass of the more probable ones before each."""
    order = np.argsort(-pmf, axis=1, kind="stable")
    ranked = np.take_along_axis(pmf, order, axis=1)
    return order, np.cumsum(ranked, axis=1) - ranked


def _sets(pmf, order, mass_before, level: float) -> tuple[np.ndarray, np.ndarray]:
    # Add counts while the mass gathered so far is short of the level (a tiny tolerance so that
    # a floating-point sum of exactly `level` does not pull in one more count).
    keep_ranked = mass_before < level - 1e-12
    mask = np.zeros_like(keep_ranked)
    np.put_along_axis(mask, order, keep_ranked, axis=1)
    return mask, np.where(mask, pmf, 0.0).sum(axis=1)


def coverage_sums(
    observed: np.ndarray, pmf: np.ndarray, levels=COVERAGE_LEVELS
) -> tuple[np.ndarray, np.ndarray]:
    """Per level: how many observed counts fall in their highest-density set, and the sum of the
    sets' achieved masses (divide both by the number of rows for coverage and its target)."""
    rows = np.arange(len(observed))
    observed = np.asarray(observed).astype(int)
    order, mass_before = _ranked(pmf)
    hits, masses = np.zeros(len(levels)), np.zeros(len(levels))
    for i, level in enumerate(levels):
        mask, achieved = _sets(pmf, order, mass_before, level)
        hits[i], masses[i] = mask[rows, observed].sum(), achieved.sum()
    return hits, masses


def question_coverage(counts_q: np.ndarray, conc_q: np.ndarray, levels=COVERAGE_LEVELS,
                      chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Observed coverage and its target (mean achieved mass) per level for one question:
    counts (G, answers), concentrations (G, answers, samples); NaN without galaxies."""
    n_votes = counts_q.sum(axis=1)
    total = conc_q.sum(axis=1)
    answers = [0] if counts_q.shape[1] == 2 else range(counts_q.shape[1])
    hits, masses = np.zeros(len(levels)), np.zeros(len(levels))
    for a in answers:
        for start in range(0, len(counts_q), chunk):  # bounds memory at (chunk, samples, N + 1)
            rows = slice(start, start + chunk)
            alpha = conc_q[rows, a]
            pmf = answer_marginal_pmf(n_votes[rows], alpha, total[rows] - alpha)
            chunk_hits, chunk_masses = coverage_sums(counts_q[rows, a], pmf, levels)
            hits += chunk_hits
            masses += chunk_masses
    n = len(counts_q) * len(answers)
    if n == 0:
        return np.full(len(levels), np.nan), np.full(len(levels), np.nan)
    return hits / n, masses / n


# ---- the protocol ---------------------------------------------------------------------------


def evaluate_question(
    question: Question,
    counts: np.ndarray,
    conc: np.ndarray,
    true_fractions: np.ndarray,
    pred_fractions: np.ndarray,
    p_asked: np.ndarray,
) -> QuestionEvaluation:
    cols = slice(question.start, question.end + 1)
    n_answers = len(question.answers)
    votes = counts[:, cols].sum(axis=1)
    true_q, pred_q = true_fractions[:, cols], pred_fractions[:, cols]
    result = QuestionEvaluation(question)

    asked = (p_asked[:, question.index] >= MIN_P_ASKED) & (votes > 0)
    true_label, pred_label = true_q[asked].argmax(axis=1), pred_q[asked].argmax(axis=1)
    confident = true_q[asked].max(axis=1) > CONFIDENT_FRACTION
    result.confusion = confusion_matrix(true_label, pred_label, n_answers)
    result.confusion_confident = confusion_matrix(
        true_label[confident], pred_label[confident], n_answers
    )
    m = result.metrics
    m["n"] = float(asked.sum())
    m.update(classification_metrics(true_label, pred_label, n_answers))
    m["n_confident"] = float(confident.sum())
    confident_metrics = classification_metrics(
        true_label[confident], pred_label[confident], n_answers
    )
    m.update({f"{k}_confident": v for k, v in confident_metrics.items()})

    well_voted = votes >= MIN_VOTES_REGRESSION
    result.true_fractions, result.predicted_fractions = true_q[well_voted], pred_q[well_voted]
    regression = regression_metrics(true_q[well_voted], pred_q[well_voted])
    m["n_regression"] = float(well_voted.sum())
    m["mae"], m["rmse"] = regression["mae"], regression["rmse"]
    for answer, mae, rmse in zip(
        question.answers, regression["answer_mae"], regression["answer_rmse"], strict=True
    ):
        m[f"{answer.name}/mae"], m[f"{answer.name}/rmse"] = float(mae), float(rmse)

    observed, expected = question_coverage(counts[asked][:, cols], conc[asked][:, cols])
    result.coverage_observed, result.coverage_expected = observed, expected
    for level, hit, mass in zip(COVERAGE_LEVELS, observed, expected, strict=True):
        if level in LOGGED_COVERAGE_LEVELS:
            m[f"coverage_{level}"], m[f"coverage_expected_{level}"] = float(hit), float(mass)
    return result


def evaluate_predictions(
    schema: Schema,
    counts: np.ndarray,
    concentrations: np.ndarray,
    true_probabilities: np.ndarray | None = None,
) -> Evaluation:
    """The whole protocol. counts (G, answers) in label order; concentrations (G, answers[, S]).

    `true_probabilities` (G, answers), the simulator's answer probabilities within each question,
    adds the truth comparison.
    """
    counts = np.asarray(counts, dtype=np.float64)
    conc = as_samples(concentrations)
    if counts.shape != conc.shape[:2] or counts.shape[1] != schema.n_answers:
        raise ValueError(
            f"counts {counts.shape} and concentrations {conc.shape} must both have "
            f"{schema.n_answers} answer columns for the same galaxies"
        )
    true_fractions = schema.fractions_within_questions(counts)
    pred_fractions = mean_expected_fractions(conc, schema)
    p_asked = schema.p_asked(true_fractions)
    questions = [
        evaluate_question(q, counts, conc, true_fractions, pred_fractions, p_asked)
        for q in schema.questions
    ]
    overall = {"n_galaxies": float(len(counts)), **question_means(questions)}
    by_question = {q.question.name: q.metrics for q in questions}
    for key, value in joint_rmse(schema, counts, pred_fractions).items():
        question, _, name = key.rpartition("/")
        (by_question[question] if question else overall)[name] = value
    overall.update(campaign_metrics(schema, counts, questions))
    if true_probabilities is not None:
        by_question = {q.question.name: q.metrics for q in questions}
        for key, value in truth_metrics(schema, counts, pred_fractions, true_probabilities).items():
            question, _, name = key.rpartition("/")
            (by_question[question] if question else overall)[name] = value
    return Evaluation(schema, questions, overall)


MEAN_KEYS = ("accuracy", "accuracy_confident", "f1", "mae")


def question_means(questions: list[QuestionEvaluation]) -> dict[str, float]:
    """Means over questions of the headline measures (NaN-free questions only)."""
    out = {}
    for key in MEAN_KEYS:
        values = [q.metrics[key] for q in questions if np.isfinite(q.metrics[key])]
        out[f"mean_{key}"] = float(np.mean(values)) if values else float("nan")
    return out


def joint_rmse(schema: Schema, counts: np.ndarray, pred_fractions: np.ndarray) -> dict[str, float]:
    """Kaggle's GZ2 metric: RMSE of the joint ("cumulative") vote fractions, every galaxy x answer,
    over the questions that got votes in this split (a catalog without some questions' columns
    is scored on those it has, as Kaggle's 17-column subset). Per question as well.

    The volunteers' joint fractions come from their counts (exact for fractional counts, within
    rounding for pseudo-counts); the model's from its expected fractions.
    """
    true = schema.joint_fractions(schema.fractions_within_questions(counts))
    pred = schema.joint_fractions(pred_fractions)
    error = (pred - true) ** 2
    out, scored = {}, []
    for q in schema.questions:
        cols = slice(q.start, q.end + 1)
        if len(counts) and counts[:, cols].sum() > 0:
            out[f"{q.name}/joint_rmse"] = float(np.sqrt(error[:, cols].mean()))
            scored.extend(range(q.start, q.end + 1))
    if scored:
        out["joint_rmse"] = float(np.sqrt(error[:, scored].mean()))
    return out


def campaign_metrics(schema: Schema, counts: np.ndarray, questions) -> dict[str, float]:
    """For trees holding several campaigns (Schema.campaigns): each campaign's galaxies (with a
    vote on any of its questions) and the question means over its questions."""
    if len(schema.campaigns) < 2:
        return {}
    out = {}
    for campaign in schema.campaigns:
        own = [q for q in questions if schema.campaign_of(q.question.name) == campaign]
        cols = [i for q in own for i in range(q.question.start, q.question.end + 1)]
        out[f"campaign/{campaign}/n_galaxies"] = float((counts[:, cols].sum(axis=1) > 0).sum())
        means = question_means(own)
        out.update({f"campaign/{campaign}/{k}": v for k, v in means.items()})
    return out


def truth_metrics(
    schema: Schema, counts: np.ndarray, pred_fractions: np.ndarray, true_probabilities: np.ndarray
) -> dict[str, float]:
    """MAE vs the simulator's truth of the model and of the volunteers, over answered questions.

    Keys `truth_mae`, `volunteer_floor_mae`, `truth_mae_ratio` pool every answered question;
    `<question>/...` are per question. A ratio < 1 means the model recovers the truth better than
    the volunteers' own (finite-count, noisy) fractions do.
    """
    truth = np.asarray(true_probabilities, dtype=np.float64)
    model_error = np.abs(pred_fractions - truth)
    floor_error = np.abs(schema.fractions_within_questions(counts) - truth)
    answered = np.zeros(counts.shape, dtype=bool)
    out: dict[str, float] = {}
    for q in schema.questions:
        cols = slice(q.start, q.end + 1)
        rows = counts[:, cols].sum(axis=1) > 0
        answered[rows, cols] = True
        out.update(_truth_summary(model_error[rows, cols], floor_error[rows, cols], f"{q.name}/"))
    out.update(_truth_summary(model_error[answered], floor_error[answered], ""))
    return out


def _truth_summary(model_error: np.ndarray, floor_error: np.ndarray, prefix: str) -> dict:
    if model_error.size == 0:
        return {}
    model, floor = float(model_error.mean()), float(floor_error.mean())
    return {
        f"{prefix}truth_mae": model,
        f"{prefix}volunteer_floor_mae": floor,
        f"{prefix}truth_mae_ratio": model / floor if floor > 0 else float("nan"),
    }
