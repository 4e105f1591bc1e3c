"""The evaluation protocol on hand-built arrays: every number checked against a hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gz_experiments.evaluation import protocol as evaluate
from gz_experiments.schema import Schema
from gz_experiments.votes.dirichlet_multinomial import answer_marginal_pmf

# A two-question tree: `shape` (binary) is asked of everyone, `arms` (3 answers) after "disk".
TREE = Schema.from_dict(
    {
        "name": "toy",
        "questions": [
            {"name": "shape", "answers": ["disk", "round"]},
            {"name": "arms", "answers": ["one", "two", "many"], "parents": ["shape_disk"]},
        ],
    }
)


def perfect_concentrations(counts: np.ndarray) -> np.ndarray:
    """Concentrations whose Dirichlet means are exactly the volunteers' fractions."""
    return TREE.fractions_within_questions(counts) * 50 + 1e-9


def test_perfect_prediction_scores_accuracy_one_and_mae_zero():
    counts = np.array(
        [[30, 10, 5, 20, 5], [4, 36, 1, 1, 2], [25, 0, 0, 0, 25], [20, 20, 10, 5, 5]], float
    )
    result = evaluate.evaluate_predictions(TREE, counts, perfect_concentrations(counts))
    metrics = result.metrics("test")
    for question in ("shape", "arms"):
        assert metrics[f"test/{question}/accuracy"] == 1.0
        assert metrics[f"test/{question}/f1"] == pytest.approx(1.0)
        assert metrics[f"test/{question}/mae"] == pytest.approx(0.0, abs=1e-9)
        assert metrics[f"test/{question}/rmse"] == pytest.approx(0.0, abs=1e-9)
    # Galaxy 2 has p(asked arms) = 4/40 < 0.5, so only 3 galaxies are evaluated on `arms`.
    assert metrics["test/arms/n"] == 3
    assert metrics["test/shape/n"] == 4


def test_known_confusion_gives_hand_computed_scores():
    # shape: truth disk, disk, disk, round; predicted disk, round, disk, round.
    counts = np.array([[9, 1, 0, 0, 0], [8, 2, 0, 0, 0], [6, 4, 0, 0, 0], [3, 7, 0, 0, 0]], float)
    predicted = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    conc = np.hstack([predicted * 10, np.ones((4, 3))])
    result = evaluate.evaluate_predictions(TREE, counts, conc)
    shape = result.questions[0]
    np.testing.assert_array_equal(shape.confusion, [[2, 1], [0, 1]])
    m = shape.metrics
    assert m["accuracy"] == pytest.approx(0.75)
    # disk: precision 2/2, recall 2/3; round: precision 1/2, recall 1/1; weights 3/4 and 1/4.
    assert m["precision"] == pytest.approx(0.75 * 1 + 0.25 * 0.5)
    assert m["recall"] == pytest.approx(0.75)
    f1_disk, f1_round = 2 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 / 1.5
    assert m["f1"] == pytest.approx(0.75 * f1_disk + 0.25 * f1_round)
    # Confident galaxies (true fraction > 0.8): only the first (0.9); the second is exactly 0.8.
    assert m["n_confident"] == 1
    assert m["accuracy_confident"] == 1.0
    np.testing.assert_array_equal(shape.confusion_confident, [[1, 0], [0, 0]])
    # Fewer than 20 votes everywhere: no regression numbers, and none logged.
    assert m["n_regression"] == 0
    assert "test/shape/mae" not in result.metrics("test")


def test_regression_uses_only_galaxies_with_20_votes():
    counts = np.array([[15, 5, 0, 0, 0], [10, 30, 0, 0, 0], [5, 5, 0, 0, 0]], float)
    predicted = np.array([[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
    conc = np.hstack([predicted * 10 + 1e-9, np.ones((3, 3))])
    m = evaluate.evaluate_predictions(TREE, counts, conc).questions[0].metrics
    assert m["n_regression"] == 2
    # errors: |0.5 - 0.75| and |0.5 - 0.25| on both answers of both galaxies = 0.25 each.
    assert m["mae"] == pytest.approx(0.25)
    assert m["rmse"] == pytest.approx(0.25)
    assert m["disk/mae"] == pytest.approx(0.25)


def test_mc_samples_are_averaged_as_dirichlet_means():
    conc = np.zeros((1, 5, 2))
    conc[0, :2, 0] = [3, 1]  # mean 0.75
    conc[0, :2, 1] = [1, 1]  # mean 0.5
    conc[0, 2:, :] = 1
    fractions = evaluate.mean_expected_fractions(conc, TREE)
    np.testing.assert_allclose(fractions[0, :2], [0.625, 0.375])


def test_beta_binomial_mixture_matches_scipy():
    n = np.array([5, 12])
    alpha = np.array([[2.0, 7.0], [1.5, 3.0]])
    beta = np.array([[3.0, 1.0], [4.0, 2.5]])
    pmf = answer_marginal_pmf(n, alpha, beta)
    assert pmf.shape == (2, 13)
    for g in range(2):
        k = np.arange(n[g] + 1)
        expected = np.mean(
            [stats.betabinom.pmf(k, n[g], a, b) for a, b in zip(alpha[g], beta[g], strict=True)], 0
        )
        np.testing.assert_allclose(pmf[g, : n[g] + 1], expected, rtol=1e-10)
    assert pmf[0, 6:].sum() == 0
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0)


def test_highest_density_set_takes_the_most_probable_counts():
    pmf = np.array([[0.1, 0.5, 0.3, 0.1], [0.45, 0.1, 0.0, 0.45]])
    mask, mass = evaluate.highest_density_sets(pmf, 0.8)
    np.testing.assert_array_equal(mask[0], [False, True, True, False])
    assert mass[0] == pytest.approx(0.8)
    # A bimodal posterior gets a two-piece set, not an interval around one mode.
    np.testing.assert_array_equal(mask[1], [True, False, False, True])
    mask, mass = evaluate.highest_density_sets(pmf, 0.85)
    assert mask[0].sum() == 3 and mass[0] == pytest.approx(0.9)


def calibrated_sample(rng, n_galaxies, scale=1.0):
    """Votes drawn from the very Dirichlet-multinomial a model predicts (scaled = overconfident)."""
    alpha = rng.uniform(1, 20, size=(n_galaxies, 2))
    p_yes = rng.beta(alpha[:, 0], alpha[:, 1])
    n = rng.integers(5, 41, size=n_galaxies)
    yes = rng.binomial(n, p_yes)
    counts = np.zeros((n_galaxies, 5))
    counts[:, 0], counts[:, 1] = yes, n - yes
    conc = np.ones((n_galaxies, 5))
    conc[:, :2] = alpha * scale
    return counts, conc


def test_calibrated_model_covers_at_the_nominal_rate_and_overconfident_does_not():
    rng = np.random.default_rng(0)
    counts, conc = calibrated_sample(rng, 4000)
    shape = evaluate.evaluate_predictions(TREE, counts, conc).questions[0]
    levels = np.array(evaluate.COVERAGE_LEVELS)
    assert np.all(shape.coverage_expected >= levels - 1e-9)
    np.testing.assert_allclose(shape.coverage_observed, shape.coverage_expected, atol=0.03)
    assert shape.metrics["coverage_0.8"] == pytest.approx(0.8, abs=0.06)

    overconfident = conc.copy()
    overconfident[:, :2] *= 30
    shape = evaluate.evaluate_predictions(TREE, counts, overconfident).questions[0]
    assert shape.metrics["coverage_0.8"] < shape.metrics["coverage_expected_0.8"] - 0.1


def test_coverage_is_the_same_computed_in_chunks():
    counts, conc = calibrated_sample(np.random.default_rng(1), 50)
    conc = np.repeat(conc[:, :, None], 3, axis=2) * np.array([0.5, 1.0, 2.0])
    whole = evaluate.question_coverage(counts[:, :2], conc[:, :2])
    chunked = evaluate.question_coverage(counts[:, :2], conc[:, :2], chunk=7)
    np.testing.assert_allclose(whole, chunked)


def test_truth_ratio_compares_model_with_volunteer_counting_noise():
    truth = np.array([[0.7, 0.3, 0.2, 0.5, 0.3], [0.2, 0.8, 1 / 3, 1 / 3, 1 / 3]])
    counts = np.array([[8, 2, 2, 4, 4], [2, 8, 0, 0, 0]], float)
    result = evaluate.evaluate_predictions(TREE, counts, truth * 40, true_probabilities=truth)
    metrics = result.metrics("test")
    assert metrics["test/truth_mae"] == pytest.approx(0.0, abs=1e-12)
    # Volunteers on shape: errors 0.1, 0.1 (galaxy 0) and 0, 0 (galaxy 1); on arms (only galaxy 0
    # answered it): |0.2-0.2|, |0.4-0.5|, |0.4-0.3|. Seven cells, total error 0.4.
    assert metrics["test/volunteer_floor_mae"] == pytest.approx(0.4 / 7)
    assert metrics["test/shape/volunteer_floor_mae"] == pytest.approx(0.05)
    assert metrics["test/truth_mae_ratio"] == pytest.approx(0.0, abs=1e-10)
    assert "truth_mae" in result.table().columns


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="5 answer columns"):
        evaluate.evaluate_predictions(TREE, np.ones((3, 5)), np.ones((3, 4)))


# ---- a real model on real shards, logged to MLflow -----------------------------------------


def write_toy_catalog(folder, n_galaxies=24, size=16):
    """PNG images, vote counts of the toy tree, and a simulator-like truth table beside them."""
    import pandas as pd
    import yaml
    from PIL import Image

    rng = np.random.default_rng(1)
    (folder / "images").mkdir(parents=True)
    tree = folder / "toy.yaml"
    tree.write_text(yaml.safe_dump(TREE.to_dict()))
    truth = rng.dirichlet([2, 2], n_galaxies)
    arms = rng.dirichlet([1, 1, 1], n_galaxies)
    rows, truth_rows = [], []
    for i in range(n_galaxies):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"g{i}.png")
        shape = rng.multinomial(30, truth[i])
        votes = dict(zip(TREE.label_cols[:2], shape, strict=True))
        votes.update(zip(TREE.label_cols[2:], rng.multinomial(shape[0], arms[i]), strict=True))
        rows.append({"id_str": f"g{i}", "file_loc": f"images/g{i}.png", **votes})
        probs = np.concatenate([truth[i], arms[i]])
        true_cols = [f"{c}_true" for c in TREE.label_cols]
        truth_rows.append({"id_str": f"g{i}", **dict(zip(true_cols, probs, strict=True))})
    pd.DataFrame(rows).to_csv(folder / "catalog.csv", index=False)
    pd.DataFrame(truth_rows).to_parquet(folder / "truth.parquet")
    return folder / "catalog.csv", tree


def test_evaluate_model_logs_metrics_plots_and_tables(tmp_path, tracking):
    import mlflow

    from entry_points.evaluate import run as run_evaluate_step
    from gz_experiments.config import EvaluateConfig, ShardConfig
    from gz_experiments.model_spec import ModelSpec
    from gz_experiments.models import build_model
    from gz_experiments.shards.writer import run_shard
    from gz_experiments.tracking.models import log_galaxy_model

    catalog, tree = write_toy_catalog(tmp_path / "sim")
    shard_dir = tmp_path / "shards"
    run_shard(
        ShardConfig.resolve(
            "debug", catalog=str(catalog), shard_dir=str(shard_dir), schema=str(tree),
            img_size=16, test_fraction=0.5, n_workers=1,
        )
    )  # fmt: skip
    spec = ModelSpec("small_cnn", 16, 1, 0.75, 16, 0.2, TREE)
    build_model(spec, seed=0).save(tmp_path / "m.keras")
    with mlflow.start_run() as train_run:
        log_galaxy_model(tmp_path / "m.keras", spec)

    config = EvaluateConfig.resolve(
        "debug", model_uri=f"runs:/{train_run.info.run_id}/model", shard_dir=str(shard_dir)
    )
    evaluation = run_evaluate_step(config).evaluation
    run = mlflow.last_active_run()
    again = run_evaluate_step(config).evaluation  # the same seed: the same MC samples, metrics
    assert again.metrics("test") == evaluation.metrics("test")
    other = run_evaluate_step(config.replace(seed=1)).evaluation
    assert other.metrics("test") != evaluation.metrics("test")
    logged = mlflow.get_run(run.info.run_id).data.metrics
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == [f"{TREE.name}/test"]
    assert logged["test/n_galaxies"] == 12
    assert logged["test/shape/n"] == 12
    assert 0 <= logged["test/shape/accuracy"] <= 1
    assert logged["test/truth_mae"] == pytest.approx(evaluation.overall["truth_mae"])
    assert logged["test/volunteer_floor_mae"] > 0
    assert "test/shape/coverage_0.8" in logged
    artifacts = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=tmp_path)
    folder = tmp_path / "evaluation" / "test"
    assert artifacts
    for name in ("confusion/shape.png", "fractions/arms.png", "coverage/shape.png", "metrics.md"):
        assert (folder / name).is_file(), name
    assert "| shape |" in (folder / "metrics.md").read_text()


def test_joint_rmse_is_kaggles_metric_on_the_columns_a_split_has():
    """On real Kaggle rows: scored exactly as ingest.rmse_kaggle scores a Kaggle table."""
    from gz_experiments.ingest.fractions import cumulative_to_counts, kaggle_table, rmse_kaggle
    from gz_experiments.schema import get_schema

    from .conftest import shared_data

    rows = pd.read_csv(shared_data("gz2_kaggle_424") / "catalog.csv").head(40)
    schema = get_schema("kaggle-gz2")
    columns = [c for c in rows.columns if c.startswith("Class")]
    cumulative = np.zeros((len(rows), schema.n_answers))
    positions = {c: i for i, c in enumerate(kaggle_table(cumulative, schema).columns[0:])}
    for c in columns:
        cumulative[:, positions[c]] = rows[c]
    present = np.array([any(f"Class{qi + 1}." in c for c in columns)
                        for qi in range(schema.n_questions)])  # fmt: skip
    counts = cumulative_to_counts(cumulative, schema, 40, "fractional", present)
    guess = np.random.default_rng(0).uniform(1, 50, (len(rows), schema.n_answers))
    result = evaluate.evaluate_predictions(schema, counts, guess)
    predicted = kaggle_table(evaluate.mean_expected_fractions(guess, schema), schema)
    expected = rmse_kaggle(rows[columns], predicted, columns)
    assert result.overall["joint_rmse"] == pytest.approx(expected, rel=1e-6)
    assert "joint_rmse" in result.questions[6].metrics  # how-rounded (Class7)
    assert "joint_rmse" not in result.questions[2].metrics  # bar: Class3 is not in the subset
    assert "test/how-rounded/joint_rmse" in result.metrics("test")
    perfect = evaluate.evaluate_predictions(schema, counts, 1e6 * counts + 1e-3)
    assert perfect.overall["joint_rmse"] < 1e-4


def test_campaigns_are_reported_apart():
    from gz_experiments.schema import get_schema

    schema = get_schema("decals-all")
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 10, (30, schema.n_answers)).astype(float)
    dr12 = [i for q in schema.questions if q.name.endswith("-dr12")
            for i in range(q.start, q.end + 1)]  # fmt: skip
    dr5 = sorted(set(range(schema.n_answers)) - set(dr12))
    counts[:10, dr12] = 0  # GZD-5 only
    counts[10:18, dr5] = 0  # GZD-1/2 only
    metrics = evaluate.evaluate_predictions(schema, counts, rng.uniform(1, 9, counts.shape)).overall
    assert metrics["campaign/gzd5/n_galaxies"] == 22 and metrics["campaign/gzd12/n_galaxies"] == 20
    assert 0 <= metrics["campaign/gzd12/mean_accuracy"] <= 1
    assert "campaign/gzd5/mean_mae" in metrics
