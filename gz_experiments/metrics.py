"""Training metrics beyond the loss: vote-fraction error per question and the constant baseline.

- `VoteFractionMAE`: per question, the mean absolute error between the volunteers' vote fractions
  and the model's expected fractions (alpha_a / sum of the question's alphas), averaged over the
  question's answers and over the galaxies that have at least one vote on it. Keras logs it as
  ``mae/<question>`` and ``val_mae/<question>``.
- `baseline_concentrations` / `baseline_loss`: the loss of a model that ignores the image and
  always predicts the training set's vote fractions. Per question, the fractions are the pooled
  training votes (sum of an answer's votes / sum of the question's votes); the concentrations are
  those fractions times a total concentration s, fitted per question by a grid search minimising
  the training loss, and clipped to the head's range (1, 101). A trained model must beat it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gz_experiments.losses import (
    CONCENTRATION_MIN,
    CONCENTRATION_RANGE,
    QuestionMetric,
)
from gz_experiments.schema import Schema
from gz_experiments.votes.dirichlet_multinomial import answers_to_questions, numpy_log_likelihood


@keras.saving.register_keras_serializable(package="gz_experiments")
class VoteFractionMAE(QuestionMetric):
    """Per-question MAE of expected vote fractions; `result()` is ``{"mae/<question>": v}``."""

    prefix = "mae"

    def __init__(self, question_names, question_index_groups, name="vote_fraction_mae", **kwargs):
        super().__init__(question_names, question_index_groups, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        to_questions = tf.constant(answers_to_questions(self.question_index_groups), tf.float32)
        counts = tf.cast(y_true, tf.float32)
        alphas = tf.cast(y_pred, tf.float32)
        votes = tf.matmul(counts, to_questions)  # (B, Q)
        # Back from questions to their answers, so each answer is divided by its question's sum.
        votes_per_answer = tf.matmul(votes, to_questions, transpose_b=True)
        alpha_per_answer = tf.matmul(
            tf.matmul(alphas, to_questions), to_questions, transpose_b=True
        )
        error = tf.abs(counts / tf.maximum(votes_per_answer, 1.0) - alphas / alpha_per_answer)
        answers_per_question = tf.reduce_sum(to_questions, axis=0)
        per_question = tf.matmul(error, to_questions) / answers_per_question
        asked = tf.cast(votes > 0, tf.float32)
        self.totals.assign_add(tf.reduce_sum(per_question * asked, axis=0))
        self.counts.assign_add(tf.reduce_sum(asked, axis=0))


def vote_fraction_mae(schema: Schema) -> VoteFractionMAE:
    return VoteFractionMAE([q.name for q in schema.questions], schema.question_index_groups)


def _clip_alpha(alphas: np.ndarray) -> np.ndarray:
    return np.clip(alphas, CONCENTRATION_MIN, CONCENTRATION_MIN + CONCENTRATION_RANGE)


def baseline_concentrations(
    train_counts: np.ndarray, schema: Schema, n_grid: int = 96
) -> np.ndarray:
    """(n_answers,) constant concentrations: pooled training fractions x a fitted total per question."""
    counts = np.asarray(train_counts, dtype=np.float64)
    to_questions = answers_to_questions(schema.question_index_groups)
    answer_votes = counts.sum(axis=0)
    question_votes = answer_votes @ to_questions @ to_questions.T
    sizes = to_questions.sum(axis=0) @ to_questions.T  # each answer's question size
    fractions = np.where(
        question_votes > 0, answer_votes / np.maximum(question_votes, 1), 1 / sizes
    )
    # Totals from "every answer at the minimum alpha" to "every answer at the maximum".
    scales = np.geomspace(1.0, CONCENTRATION_MIN + CONCENTRATION_RANGE, n_grid)
    losses = np.stack(
        [_mean_nll(counts, _clip_alpha(fractions * s * sizes), schema) for s in scales]
    )
    best_scale = scales[np.argmin(losses, axis=0)]  # (Q,)
    return _clip_alpha(fractions * (best_scale @ to_questions.T) * sizes)


def _mean_nll(counts: np.ndarray, alphas: np.ndarray, schema: Schema) -> np.ndarray:
    """Mean over galaxies of each question's loss, (Q,), for constant `alphas`."""
    tiled = np.broadcast_to(alphas, counts.shape)
    return -numpy_log_likelihood(counts, tiled, schema).mean(axis=0)


def baseline_loss(counts: np.ndarray, alphas: np.ndarray, schema: Schema) -> float:
    """Mean over galaxies of the summed per-question loss: the convention of the training loss."""
    if len(counts) == 0:
        return float("nan")
    return float(_mean_nll(np.asarray(counts, dtype=np.float64), alphas, schema).sum())
