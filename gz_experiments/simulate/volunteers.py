"""Volunteers: how many classify each galaxy, and their walk down the decision tree.

Each volunteer answers the root question, then only the questions their answers lead to (a
question is reached from any of its parent answers: `merging` from both `smooth` and
`featured-or-disk`), drawing each answer from the galaxy's true probabilities. So a child
question's total is exactly the sum of its parent answers' counts, and the expected vote fraction
of every answer is its true probability. The walk reads only the Schema (parents, topological
order); only `probabilities.py` knows the gzd5 questions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gz_experiments.config import SimulateConfig
from gz_experiments.schema import Schema, get_schema
from gz_experiments.simulate.latents import CHUNK, sample_latents, take
from gz_experiments.simulate.probabilities import true_probabilities
from gz_experiments.votes.dirichlet_multinomial import draw_answers

VOTE_STREAM = 2
# Offsets around the nominal number of volunteers, as in 4,000 real GZ DECaLS galaxies (two
# thirds got exactly 40 classifications, most others 37-42).
VOTE_OFFSETS = {-3: 0.05, -2: 0.05, -1: 0.08, 0: 0.66, 1: 0.13, 2: 0.02, 3: 0.01}


@dataclass(frozen=True)
class Votes:
    """Simulated galaxies without images: latents, true answer probabilities and vote counts."""

    latents: dict[str, np.ndarray]
    true_probs: np.ndarray  # (n, n_answers), label order; sums to 1 within each question
    counts: np.ndarray  # (n, n_answers) int32 vote counts
    n_volunteers: np.ndarray  # (n,) volunteers who saw the galaxy (= root question total)
    schema: Schema


def volunteers_per_galaxy(
    rng: np.random.Generator, n: int, votes_high: int, votes_low: int, low_fraction: float
) -> np.ndarray:
    """Most galaxies get ~votes_high classifications, a fraction ~votes_low (never fewer than 1)."""
    nominal = np.where(rng.random(n) < low_fraction, votes_low, votes_high)
    offsets = rng.choice(list(VOTE_OFFSETS), n, p=list(VOTE_OFFSETS.values()))
    return np.maximum(nominal + offsets, 1)


def walk_tree(
    probs: np.ndarray, n_volunteers: np.ndarray, schema: Schema, rng: np.random.Generator
) -> np.ndarray:
    """Vote counts (n, n_answers) of `n_volunteers[i]` volunteers each walking the tree."""
    n = len(n_volunteers)
    width = int(n_volunteers.max(initial=0))
    present = np.arange(width)[None, :] < n_volunteers[:, None]
    choices: dict[str, np.ndarray] = {}  # question -> answer position per volunteer, -1 = not asked
    counts = np.zeros((n, schema.n_answers), np.int32)
    for question in schema.topological_order:
        asked = present if not question.parents else _reached(question.parents, choices, schema)
        picked = draw_answers(probs[:, question.start : question.end + 1], width, rng)
        picked = np.where(asked, picked, -1)
        choices[question.name] = picked
        for position, answer in enumerate(question.answers):
            counts[:, answer.index] = (picked == position).sum(axis=1)
    return counts


def _reached(
    parents: tuple[str, ...], choices: dict[str, np.ndarray], schema: Schema
) -> np.ndarray:
    reached = None
    for label_col in parents:
        answer = schema.answer(label_col)
        position = answer.index - schema.question(answer.question).start
        gave = choices[answer.question] == position
        reached = gave if reached is None else reached | gave
    return reached


def simulate_votes(config: SimulateConfig, schema: Schema | None = None) -> Votes:
    """Latents, true probabilities and votes of `config.n_galaxies` galaxies, no rendering.

    Chunk c uses its own stream of the seed and is always simulated whole, so galaxy i's votes
    do not depend on n_galaxies.
    """
    schema = schema or get_schema("gzd5")
    n = config.n_galaxies
    n_full = -(-n // CHUNK) * CHUNK
    latents = sample_latents(config.seed, n_full)
    probs = true_probabilities(latents, schema)
    counts = np.zeros((n_full, schema.n_answers), np.int32)
    volunteers = np.zeros(n_full, np.int64)
    for start in range(0, n_full, CHUNK):
        rng = np.random.default_rng([config.seed, VOTE_STREAM, start // CHUNK])
        part = slice(start, start + CHUNK)
        volunteers[part] = volunteers_per_galaxy(
            rng, CHUNK, config.votes_high, config.votes_low, config.low_vote_fraction
        )
        counts[part] = walk_tree(probs[part], volunteers[part], schema, rng)
    keep = slice(0, n)
    return Votes(take(latents, keep), probs[keep], counts[keep], volunteers[keep], schema)
