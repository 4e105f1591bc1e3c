"""Several campaigns in one tree: the derived tree (names, dependencies, campaigns), and the
balancing weights (NumPy reference, the TensorFlow version training applies, the loss they give)."""

from __future__ import annotations

import numpy as np
import pytest

from gz_experiments.campaigns import (
    balanced_weights,
    example_weights,
    label_renames,
    labelled_by,
    side_by_side,
)
from gz_experiments.errors import UserError
from gz_experiments.schema import Schema, get_schema


@pytest.fixture(scope="module")
def tree():
    return side_by_side(
        {"gz2": get_schema("kaggle-gz2"), "kaggle-gz2": get_schema("gz2"), "gz1": get_schema("gz1")}
    )


def test_every_campaign_keeps_its_questions_answers_and_dependencies_under_its_suffix(tree):
    assert tree.campaigns == {"gz2": "-gz2", "kaggle-gz2": "-kaggle-gz2", "gz1": "-gz1"}
    for campaign in tree.campaigns:
        source = {"gz2": "kaggle-gz2", "kaggle-gz2": "gz2", "gz1": "gz1"}[campaign]
        own = get_schema(source)
        renames = label_renames(campaign, own)
        for q in own.questions:
            merged = tree.question(f"{q.name}-{campaign}")
            assert [a.name for a in merged.answers] == [a.name for a in q.answers]
            assert list(merged.parents) == [renames[p] for p in q.parents]
            # "-kaggle-gz2" also ends with "-gz2": the longest suffix decides
            assert tree.campaign_of(merged.name) == campaign
    n = sum(get_schema(t).n_answers for t in ("kaggle-gz2", "gz2", "gz1"))
    assert tree.n_answers == n and len(set(tree.label_cols)) == n
    # p_asked works on the merged tree: every campaign's roots are asked
    asked = tree.p_asked(np.full(tree.n_answers, 0.5))
    assert asked[tree.question("gz1-class-gz1").index] == 1.0


def test_campaign_names_must_be_usable_as_suffixes_and_unique():
    gz1 = get_schema("gz1")
    with pytest.raises(UserError, match="lower-case letters"):
        side_by_side({"GZ 1": gz1, "b": gz1})
    with pytest.raises(UserError, match="no campaigns"):
        side_by_side({})
    # gz2's question "x-kaggle" would be named "x-kaggle-gz2": campaign kaggle-gz2's suffix
    clash = Schema.from_dict(
        {"name": "t", "questions": [{"name": "x-kaggle", "answers": ["a", "b"]}]}
    )
    with pytest.raises(UserError, match="would be read as campaign kaggle-gz2's"):
        side_by_side({"gz2": clash, "kaggle-gz2": gz1})


def test_balance_gives_every_campaign_the_same_total_weight_and_mean_one(tree):
    big, small = 300, 3
    votes = np.zeros((big + small + 2, tree.n_answers))
    votes[:big, tree.question("smooth-or-featured-gz2").start] = 40
    votes[big:, tree.answer("gz1-class-gz1_spiral").index] = 1
    votes[big + small :, tree.question("smooth-or-featured-gz2").start] = 5  # in both campaigns
    weights = balanced_weights(tree, votes)
    n = big + small + 2
    assert weights["kaggle-gz2"] == 0.0  # no galaxy: no weight, and K counts 2 campaigns
    assert weights["gz2"] == pytest.approx(n / (2 * (big + 2)))
    assert weights["gz1"] == pytest.approx(n / (2 * (small + 2)))
    per_galaxy = example_weights(tree, weights, votes)
    has = labelled_by(tree, votes)
    only = has.sum(axis=1) == 1
    names = list(tree.campaigns)
    totals = [per_galaxy[only & has[:, names.index(c)]].sum() for c in ("gz2", "gz1")]
    # the two campaigns' single-campaign galaxies weigh alike despite 100x fewer of one
    assert totals[0] / totals[1] == pytest.approx((big / (big + 2)) / (small / (small + 2)))
    both = per_galaxy[big + small :]
    assert both == pytest.approx((weights["gz2"] + weights["gz1"]) / 2)
    assert example_weights(tree, weights, np.zeros((1, tree.n_answers)))[0] == 1.0


def test_balance_needs_a_tree_of_several_campaigns():
    with pytest.raises(UserError, match="campaign_balance=none"):
        balanced_weights(get_schema("gzd5"), np.ones((2, 3)))


def test_decals_all_is_balanced_by_its_declared_campaigns():
    schema = get_schema("decals-all")
    votes = np.zeros((4, schema.n_answers))
    votes[:3, schema.question("smooth-or-featured").start] = 10
    votes[3, schema.question("smooth-or-featured-dr12").start] = 10
    assert balanced_weights(schema, votes) == pytest.approx({"gzd5": 4 / 6, "gzd12": 2.0})


def test_tensorflow_weights_equal_the_numpy_reference_and_weight_the_loss(tree):
    import tensorflow as tf

    from gz_experiments.losses import loss_for
    from gz_experiments.training.fit import campaign_weighting

    rng = np.random.default_rng(0)
    votes = np.zeros((12, tree.n_answers), np.float32)
    votes[:7, tree.question("smooth-or-featured-gz2").start :][:, :3] = rng.integers(0, 9, (7, 3))
    votes[5:11, tree.answer("gz1-class-gz1_merger").index] = 1
    weights = balanced_weights(tree, votes)
    images = np.zeros((12, 2, 2, 1), np.float32)
    _, _, got = campaign_weighting(tree, weights)(tf.constant(images), tf.constant(votes))
    expected = example_weights(tree, weights, votes)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)

    # Keras weights each galaxy's loss and divides by the batch size, as without weights
    loss = loss_for(tree)
    alphas = tf.constant(rng.uniform(1, 10, (12, tree.n_answers)), tf.float32)
    per_galaxy = loss.call(tf.constant(votes), alphas).numpy()
    weighted = float(loss(tf.constant(votes), alphas, sample_weight=got))
    assert weighted == pytest.approx(float((per_galaxy * expected).mean()), rel=1e-5)
