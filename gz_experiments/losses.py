"""The Keras face of the vote model: the Dirichlet-multinomial loss and per-question losses.

The formula lives in `votes.dirichlet_multinomial` (one formula for TensorFlow and NumPy); here
it runs on TensorFlow's `lgamma` (tensorflow-probability does not work with Keras 3), vectorised
over questions: per-answer terms are summed into their question with one matmul against a fixed
answer -> question indicator matrix, so the compiled step has no Python loop over questions.

Reduction convention: a galaxy's loss is the **sum over questions**; a batch's loss is the **mean
over galaxies**. Keras' default `sum_over_batch_size` reduction divides by the per-replica batch
and Keras 3 then scales by 1 / num_replicas_in_sync under `tf.distribute`, so the gradient is the
mean over the *global* batch, whatever the number of replicas.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gz_experiments.schema import Schema
from gz_experiments.votes.dirichlet_multinomial import (
    log_likelihood,
    question_groups,
    tensorflow_backend,
)

CONCENTRATION_MIN = 1.0
CONCENTRATION_RANGE = 100.0


def concentrations_from_logits(logits):
    """alpha = 1 + 100 * sigmoid(x): bounded to (1, 101) as in the paper, so no epsilon is needed."""
    return CONCENTRATION_MIN + CONCENTRATION_RANGE * tf.sigmoid(logits)


def dirichlet_multinomial_nll(counts, concentrations, schema) -> tf.Tensor:
    """Per-galaxy, per-question negative log-likelihood, shape (batch, n_questions).

    `schema` is a Schema or its `question_index_groups`. Computed in the dtype of
    `concentrations` (float64 inputs give float64 results).
    """
    concentrations = tf.convert_to_tensor(concentrations)
    dtype = concentrations.dtype
    backend = tensorflow_backend(schema, dtype)
    return -log_likelihood(tf.cast(counts, dtype), concentrations, backend)


@keras.saving.register_keras_serializable(package="gz_experiments")
class DirichletMultinomialLoss(keras.losses.Loss):
    """Keras loss: per galaxy, the sum over questions of the Dirichlet-multinomial NLL.

    `y_true` are vote counts and `y_pred` concentrations, both (batch, n_answers) in label order.
    """

    def __init__(self, question_index_groups, name="dirichlet_multinomial", **kwargs):
        super().__init__(name=name, **kwargs)
        self.question_index_groups = question_groups(question_index_groups)

    def call(self, y_true, y_pred):
        y_pred = tf.cast(y_pred, tf.float32)  # lgamma in float16 (mixed precision) is too coarse
        nll = dirichlet_multinomial_nll(y_true, y_pred, self.question_index_groups)
        return tf.reduce_sum(nll, axis=-1)

    def get_config(self):
        config = super().get_config()
        config["question_index_groups"] = [list(g) for g in self.question_index_groups]
        return config


class QuestionMetric(keras.metrics.Metric):
    """A per-question mean over the galaxies that count for each question this epoch.

    Subclasses add to `totals` and `counts` (one slot per question); `result()` is a dict
    ``{"<prefix>/<question>": mean}``, which Keras 3 logs as separate metrics (``val_`` prefixed
    on validation).
    """

    prefix = "metric"

    def __init__(self, question_names, question_index_groups, name=None, **kwargs):
        super().__init__(name=name or f"per_question_{self.prefix}", **kwargs)
        self.question_names = list(question_names)
        self.question_index_groups = question_groups(question_index_groups)
        n = len(self.question_names)
        self.totals = self.add_variable(shape=(n,), initializer="zeros", name="totals")
        self.counts = self.add_variable(shape=(n,), initializer="zeros", name="counts")

    def result(self):
        means = self.totals / tf.maximum(self.counts, 1.0)
        return {f"{self.prefix}/{q}": means[i] for i, q in enumerate(self.question_names)}

    def get_config(self):
        config = super().get_config()
        config.update(
            question_names=self.question_names,
            question_index_groups=[list(g) for g in self.question_index_groups],
        )
        return config


@keras.saving.register_keras_serializable(package="gz_experiments")
class PerQuestionLoss(QuestionMetric):
    """Mean loss of each question over the galaxies seen this epoch, for per-question logging.

    `result()` is ``{"loss/<question>": value}``; Keras names the validation ones
    ``val_loss/<question>``. Every galaxy counts (an unasked question adds exactly 0), so the
    per-question means add up to the total loss.
    """

    prefix = "loss"

    def update_state(self, y_true, y_pred, sample_weight=None):
        nll = dirichlet_multinomial_nll(
            y_true, tf.cast(y_pred, tf.float32), self.question_index_groups
        )
        self.totals.assign_add(tf.reduce_sum(nll, axis=0))
        self.counts.assign_add(tf.cast(tf.shape(nll)[0], tf.float32) * tf.ones_like(self.counts))


def loss_for(schema: Schema) -> DirichletMultinomialLoss:
    return DirichletMultinomialLoss(schema.question_index_groups)


def per_question_metric(schema: Schema) -> PerQuestionLoss:
    return PerQuestionLoss([q.name for q in schema.questions], schema.question_index_groups)
