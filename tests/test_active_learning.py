"""The closed active-learning loop: what each strategy acquires, how labels-to-match is read off
the curves, and one short round of the benchmark end to end (simulated volunteers, MLflow)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from gz_experiments.acquisition import acquisition_scores
from gz_experiments.acquisition.loop import (
    CURVE_COLUMNS,
    LoopResult,
    choose,
    closed_loop,
    labels_to_reach,
    loop_data,
    model_spec,
)
from gz_experiments.config import ConfigError, Sampling
from gz_experiments.config.acquisition import ActiveLearningConfig
from gz_experiments.errors import UserError
from gz_experiments.models import build_model
from gz_experiments.prediction.sampling import Sampler

CONFIG = ActiveLearningConfig.resolve("debug", epochs=1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("GZ_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def data(cache):
    return loop_data(CONFIG)


def test_the_loop_data_are_disjoint_simulated_galaxies_with_votes_and_truth(data):
    sizes = (len(data.pool), len(data.val), len(data.test))
    assert sizes == (CONFIG.n_pool, CONFIG.n_val, CONFIG.n_test)
    ids = np.concatenate([data.pool.ids, data.val.ids, data.test.ids])
    assert len(set(ids)) == len(ids)
    assert data.pool.images.shape[1:] == (CONFIG.img_size, CONFIG.img_size, 1)
    root = data.schema.questions[0]
    totals = data.pool.counts[:, root.start : root.end + 1].sum(1)
    # every galaxy got ~`votes` volunteers: the loop has no low-vote share
    assert totals.min() >= CONFIG.votes - 3
    np.testing.assert_allclose(data.schema.fractions_within_questions(data.test.truth),
                               data.test.truth, atol=1e-6)  # fmt: skip


def test_bald_sends_the_top_scores_and_random_a_seeded_sample(data):
    model = build_model(model_spec(CONFIG, data.schema), seed=0)
    candidates = data.pool.take(np.arange(24, len(data.pool)))
    picked = choose(CONFIG, "bald", model, data.schema, candidates, seed=0, round_=0)
    samples = Sampler(model, Sampling(n_samples=CONFIG.n_samples, seed=0))(
        candidates.images, list(candidates.ids)
    )
    scores = acquisition_scores(samples, data.schema, "bald", n_volunteers=10).combined
    assert len(picked) == CONFIG.k and len(set(picked)) == CONFIG.k
    assert scores[picked].min() >= np.delete(scores, picked).max()
    shuffled = [choose(CONFIG, "random", None, data.schema, candidates, 0, r) for r in (0, 0, 1)]
    assert len(set(shuffled[0])) == CONFIG.k and shuffled[0].max() < len(candidates)
    assert shuffled[0].tolist() == shuffled[1].tolist() != shuffled[2].tolist()


def test_labels_to_reach_interpolates_between_rounds():
    n = np.array([100, 200, 300, 400])
    assert labels_to_reach(n, np.array([10.0, 8.0, 6.0, 5.0]), 7.0) == pytest.approx(250)
    assert labels_to_reach(n, np.array([10.0, 8.0, 6.0, 5.0]), 10.5) == 100
    assert np.isnan(labels_to_reach(n, np.array([10.0, 8.0, 6.0, 5.0]), 4.9))


def curves(bald: list[float], random: list[float]) -> pd.DataFrame:
    rows = []
    for strategy, losses in (("bald", bald), ("random", random)):
        for i, loss in enumerate(losses):
            rows.append((strategy, 0, i, 100 + 100 * i, loss, loss / 100, 5, 1.0, 0.0))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_the_report_says_whether_the_target_is_met():
    from benchmarks.bench_active_learning import report

    config = ActiveLearningConfig.resolve("cpu", initial=100, k=100, rounds=4, n_pool=1000)
    met = LoopResult(config, curves([30, 24, 21, 20, 19], [30, 27, 25, 23, 21]), 35.0)
    assert met.labels_to_match("bald") == pytest.approx(300)
    assert "bald reaches it with 300 labels = 60% of random's (target <= 65%: met)" in report(
        met, 1.0
    )
    met.curves["test_loss/bar"] = met.curves["test_loss"] / 10  # a per-question curve
    assert "\n  test_loss/bar 60%" not in report(met, 1.0) and "  bar 60%" in report(met, 1.0)
    missed = LoopResult(config, curves([30, 29, 28, 27, 26], [30, 27, 25, 23, 21]), 35.0)
    assert "bald never reaches it within 500 labels" in report(missed, 1.0)


def test_an_impossible_loop_is_a_config_error(data):
    with pytest.raises(ConfigError, match="initial \\+ k \\* rounds = 64 .* n_pool=40"):
        ActiveLearningConfig.resolve("debug", n_pool=40, initial=32, k=16, rounds=2)
    with pytest.raises(UserError, match=r"questions=bars: .*no question\(s\) \['bars'\]"):
        closed_loop(CONFIG.replace(questions=("bars",)), data)  # before any training


def test_one_short_round_of_the_benchmark_is_logged(tracking, cache, capsys):
    from benchmarks.bench_active_learning import main

    result = main(["--preset", "debug", "--epochs", "1"])
    table = result.curves
    assert len(table) == 2 * (CONFIG.rounds + 1)
    assert table.groupby("strategy")["n_labelled"].apply(list).to_dict() == {
        "bald": [24, 40],
        "random": [24, 40],
    }
    first = table[table["round"] == 0].set_index("strategy")
    assert first.loc["bald", "test_loss"] == first.loc["random", "test_loss"]  # same start
    assert np.isfinite(table[["test_loss", "truth_mae"]].to_numpy()).all()
    per_question = table[[c for c in table.columns if c.startswith("test_loss/")]]
    assert per_question.shape[1] == 10  # the gzd5 questions, summing to the held-out loss
    np.testing.assert_allclose(per_question.sum(axis=1), table["test_loss"], rtol=1e-9)
    assert "labelled |" in capsys.readouterr().out
    client = MlflowClient()
    run = client.search_runs([mlflow.get_experiment_by_name("test").experiment_id])[0]
    assert run.data.tags["gz.step"] == "active_learning"
    history = client.get_metric_history(run.info.run_id, "bald/seed_0/test_loss")
    assert [m.step for m in history] == [24, 40]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "random/test_loss")] == [
        24,
        40,
    ]
    names = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"curves.csv", "report.txt", "plots"} <= names
