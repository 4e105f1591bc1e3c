"""Several Galaxy Zoo campaigns in one tree, and how much each campaign weighs in the loss.

    tree = side_by_side({"gz2": get_schema("kaggle-gz2"), "gz1": get_schema("gz1")})
    tree.campaigns             # {"gz2": "-gz2", "gz1": "-gz1"}
    renamed = label_renames("gz1", get_schema("gz1"))  # gz1-class_spiral -> gz1-class-gz1_spiral
    weights = balanced_weights(tree, train_votes)      # campaign -> loss weight

The merged tree is derived, never hand-written: every campaign's questions keep their answers
and dependencies and gain the suffix ``-<campaign>``, so no two campaigns share a label column
(zoobot's GZ Evo did the same by hand for its ``-dr12`` / ``-dr8`` questions). A galaxy
labelled by one campaign has zero votes for every other campaign's questions, which the
Dirichlet-multinomial loss counts as "never asked": exactly zero loss.

Balance is a loss weight per campaign, not resampling. Weight ``w_c = N / (K * N_c)`` (N labelled
training galaxies, K campaigns present, N_c of them labelled by campaign c) makes every campaign
contribute the same total weight to an epoch's loss, so a 300k-galaxy campaign cannot drown a 3k
one, while the mean weight over galaxies stays 1 (the learning rate keeps its meaning). Resampling
would show the small campaign's galaxies many times per epoch (overfitting them first) and would
break "an epoch is one pass over the shards", on which exact resume and the multi-worker record
split rely. A galaxy labelled by several campaigns takes the mean of their weights.
"""

from __future__ import annotations

import re

import numpy as np

from gz_experiments.errors import UserError
from gz_experiments.schema import Schema

CAMPAIGN_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # goes into question names and metric keys
BALANCE_CHOICES = ("none", "equal")


def suffix(campaign: str) -> str:
    return f"-{campaign}"


def check_campaign_names(names: list[str]) -> None:
    for name in names:
        if not CAMPAIGN_NAME.match(name):
            raise UserError(
                f"campaign name {name!r}: use lower-case letters, digits and '-' (it becomes a "
                f"suffix of question names and part of metric keys), e.g. gz2 or gzd5"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(
            f"campaign {repeated[0]!r} is given twice: give each catalog its own campaign name"
        )


def label_renames(campaign: str, tree: Schema) -> dict[str, str]:
    """The tree's label columns -> their names in the merged tree."""
    end = suffix(campaign)
    return {a.label_col: f"{a.question}{end}_{a.name}" for a in tree.answers}


def side_by_side(trees: dict[str, Schema], name: str = "") -> Schema:
    """One tree holding every campaign's questions, suffixed `-<campaign>`, in the order given."""
    if not trees:
        raise UserError("no campaigns to combine")
    check_campaign_names(list(trees))
    questions = []
    for campaign, tree in trees.items():
        renames = label_renames(campaign, tree)
        questions += [
            {
                "name": f"{q.name}{suffix(campaign)}",
                "answers": [a.name for a in q.answers],
                "parents": [renames[p] for p in q.parents],
            }
            for q in tree.questions
        ]
    merged = Schema.from_dict(
        {
            "name": name or "+".join(trees),
            "questions": questions,
            "campaigns": {campaign: suffix(campaign) for campaign in trees},
        },
        source=f"the tree of campaigns {', '.join(trees)}",
    )
    # One campaign's name may end another's (gz2, kaggle-gz2): Schema.campaign_of takes the
    # longest suffix, so gz2's question "x-kaggle" would become "x-kaggle-gz2" and be read as
    # kaggle-gz2's. Every question must come back to its own campaign.
    for campaign, tree in trees.items():
        for q in tree.questions:
            owner = merged.campaign_of(f"{q.name}{suffix(campaign)}")
            if owner != campaign:
                raise UserError(
                    f"question {q.name!r} of campaign {campaign} would be read as campaign "
                    f"{owner}'s ({q.name}{suffix(campaign)}): rename one of the two campaigns"
                )
    return merged


def membership(schema: Schema) -> np.ndarray:
    """(n_answers, n_campaigns) 0/1: which campaign asked each answer (campaigns in tree order)."""
    names = list(schema.campaigns)
    out = np.zeros((schema.n_answers, len(names)), dtype=np.float32)
    for answer in schema.answers:
        out[answer.index, names.index(schema.campaign_of(answer.question))] = 1.0
    return out


def labelled_by(schema: Schema, votes: np.ndarray) -> np.ndarray:
    """(n_galaxies, n_campaigns) bool: the campaigns that gave each galaxy any vote."""
    return np.asarray(votes, dtype=np.float64) @ membership(schema) > 0


def balanced_weights(schema: Schema, votes: np.ndarray) -> dict[str, float]:
    """Campaign -> loss weight N / (K * N_c) over these (training) votes; 0 for an absent one."""
    if len(schema.campaigns) < 2:
        raise UserError(
            f"tree {schema.name!r} holds {len(schema.campaigns) or 'no'} campaign(s): balancing "
            f"needs a tree of several (made by the combine step, or decals-all); set "
            f"campaign_balance=none"
        )
    has = labelled_by(schema, votes)
    per_campaign = has.sum(axis=0)
    n_labelled, k = int(has.any(axis=1).sum()), int((per_campaign > 0).sum())
    return {
        campaign: (n_labelled / (k * int(n)) if n else 0.0)
        for campaign, n in zip(schema.campaigns, per_campaign, strict=True)
    }


def example_weights(schema: Schema, weights: dict[str, float], votes: np.ndarray) -> np.ndarray:
    """Each galaxy's loss weight: the mean weight of the campaigns that labelled it (1 if none).

    The reference for the TensorFlow version the training data pipeline applies
    (training.fit.campaign_weighting); a test holds them equal.
    """
    has = labelled_by(schema, votes).astype(np.float64)
    w = np.array([weights[c] for c in schema.campaigns], dtype=np.float64)
    n = has.sum(axis=1)
    return np.where(n > 0, has @ w / np.maximum(n, 1), 1.0)
