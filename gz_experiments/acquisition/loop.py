"""Active learning in a closed loop, with the simulator's volunteers answering the galaxies chosen.

    data = loop_data(config)                            # simulated once (cached), images in memory
    result = closed_loop(config, data, on_round=print)  # every strategy x seed, round by round

A pool of simulated galaxies is unlabelled; a fixed validation set (early stopping) and a fixed
held-out test set are labelled. For each seed and strategy: `initial` random galaxies of the pool
are labelled, a small_cnn is trained, then each round it scores the rest of the pool (`bald` or
`entropy` from MC-dropout samples, as `acquire` does, or `random`), the top k are "shown to the
volunteers" (their already simulated ~`votes` votes are revealed), and the model is retrained
from scratch (or, with `warm_start`, continued from the last round's weights). After every
training the held-out loss (mean over galaxies of the summed per-question Dirichlet-multinomial
NLL, dropout off) and the MAE against the simulator's true answer probabilities are measured.

The same seed gives every strategy the same initial set and the same weight initialisation, so
round 0 is identical across strategies and the curves differ only by what was acquired.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gz_experiments.config import Sampling, SimulateConfig
from gz_experiments.config.acquisition import ActiveLearningConfig
from gz_experiments.model_spec import ModelSpec
from gz_experiments.schema import Schema, get_schema
from gz_experiments.votes.information import acquisition_scores

PREDICT_BATCH = 256
CURVE_COLUMNS = ["strategy", "seed", "round", "n_labelled", "test_loss", "truth_mae", "epochs",
                 "train_seconds", "acquire_seconds"]  # fmt: skip


@dataclass(frozen=True)
class Galaxies:
    """Simulated galaxies in memory: images as the model takes them, votes and the truth."""

    ids: np.ndarray  # (n,) str
    images: np.ndarray  # (n, img_size, img_size, 1) float32 in [0, 1]
    counts: np.ndarray  # (n, n_answers) vote counts of the simulated volunteers
    truth: np.ndarray  # (n, n_answers) true answer probabilities

    def take(self, rows: np.ndarray) -> Galaxies:
        return Galaxies(self.ids[rows], self.images[rows], self.counts[rows], self.truth[rows])

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class LoopData:
    schema: Schema
    pool: Galaxies
    val: Galaxies
    test: Galaxies


def loop_data(config: ActiveLearningConfig, progress: bool = False) -> LoopData:
    """Simulate (or reuse from the cache) pool + val + test galaxies, split by `data_seed`."""
    from gz_experiments.images import load_image
    from gz_experiments.simulate import simulate

    n = config.n_pool + config.n_val + config.n_test
    simulation = SimulateConfig.resolve(
        "cpu", n_galaxies=n, img_size=config.img_size, seed=config.data_seed,
        votes_high=config.votes, low_vote_fraction=0.0,
    )  # fmt: skip
    catalog_path = simulate(simulation, progress=progress)
    folder = catalog_path.parent
    catalog = pd.read_csv(catalog_path, dtype={"id_str": str})
    truth_table = pd.read_parquet(folder / "truth.parquet")
    schema = get_schema("gzd5")
    images = np.stack(
        [load_image(str(folder / f), config.img_size, greyscale=True) for f in catalog["file_loc"]]
    )
    everyone = Galaxies(
        catalog["id_str"].to_numpy(),
        images,
        catalog[schema.label_cols].to_numpy(dtype=np.float32),
        truth_table[[f"{c}_true" for c in schema.label_cols]].to_numpy(dtype=np.float64),
    )
    order = np.random.default_rng(config.data_seed).permutation(n)
    test, val = order[: config.n_test], order[config.n_test : config.n_test + config.n_val]
    pool = np.sort(order[config.n_test + config.n_val :])
    return LoopData(schema, everyone.take(pool), everyone.take(val), everyone.take(test))


def model_spec(config: ActiveLearningConfig, schema: Schema) -> ModelSpec:
    return ModelSpec(
        architecture="small_cnn", img_size=config.img_size, channels=1,
        crop_fraction=config.crop_fraction, image_size=config.image_size,
        dropout=config.dropout, schema=schema,
    )  # fmt: skip


def train(config: ActiveLearningConfig, spec: ModelSpec, labelled: Galaxies, val: Galaxies,
          seed: int, model=None):  # fmt: skip
    """A model trained on `labelled` (from scratch, or on from `model`), best val-loss weights."""
    import keras

    from gz_experiments.losses import loss_for
    from gz_experiments.models import build_model

    if model is None:
        model = build_model(spec, seed=seed)
    else:
        keras.utils.set_random_seed(seed)  # the data order of this round
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss_for(spec.schema))
    stop = keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True)
    history = model.fit(
        labelled.images, labelled.counts, batch_size=config.batch_size, epochs=config.epochs,
        validation_data=(val.images, val.counts), validation_batch_size=PREDICT_BATCH,
        callbacks=[stop], shuffle=True, verbose=0,
    )  # fmt: skip
    return model, len(history.history["loss"])


def held_out(model, schema: Schema, test: Galaxies) -> dict[str, float]:
    """On `test`, dropout off: `test_loss` (mean over galaxies of the summed per-question loss),
    `truth_mae`, and each question's mean loss as `test_loss/<question>` (they sum to test_loss)."""
    from gz_experiments.evaluation.protocol import truth_metrics
    from gz_experiments.votes.dirichlet_multinomial import expected_fractions, numpy_log_likelihood

    alphas = model.predict(test.images, batch_size=PREDICT_BATCH, verbose=0).astype(np.float64)
    per_question = -numpy_log_likelihood(test.counts, alphas, schema).mean(0)
    fractions = expected_fractions(alphas, schema)
    out = {"test_loss": float(per_question.sum())}
    out["truth_mae"] = truth_metrics(schema, test.counts, fractions, test.truth)["truth_mae"]
    return out | {f"test_loss/{q.name}": float(v) for q, v in zip(schema.questions, per_question,
                                                                   strict=True)}  # fmt: skip


def choose(config: ActiveLearningConfig, strategy: str, model, schema: Schema,
           candidates: Galaxies, seed: int, round_: int) -> np.ndarray:  # fmt: skip
    """Positions in `candidates` of the k galaxies the strategy sends to the volunteers."""
    k = min(config.k, len(candidates))
    if strategy == "random":
        return np.random.default_rng([seed, round_]).choice(len(candidates), k, replace=False)
    from gz_experiments.prediction.sampling import Sampler

    sampler = Sampler(model, Sampling(n_samples=config.n_samples, seed=seed))
    concentrations = np.concatenate([
        sampler(candidates.images[i : i + PREDICT_BATCH], list(candidates.ids[i : i + PREDICT_BATCH]))
        for i in range(0, len(candidates), PREDICT_BATCH)
    ])  # fmt: skip
    scores = acquisition_scores(
        concentrations, schema, strategy, n_volunteers=config.n_volunteers,
        questions=config.questions or None, seed=seed,
    ).combined  # fmt: skip
    return np.argsort(-scores, kind="stable")[:k]


def run_strategy(config: ActiveLearningConfig, data: LoopData, strategy: str, seed: int,
                 on_round: Callable[[dict], None] | None = None) -> list[dict]:  # fmt: skip
    """The rows (CURVE_COLUMNS, then test_loss/<question>) of one strategy and seed, one per
    training round."""
    import keras

    spec = model_spec(config, data.schema)
    labelled = np.random.default_rng(seed).choice(len(data.pool), config.initial, replace=False)
    rows, model, acquire_seconds = [], None, 0.0
    for round_ in range(config.rounds + 1):
        start = time.perf_counter()
        warm = model if config.warm_start else None
        if warm is None:
            keras.backend.clear_session()  # a fresh graph per round: memory stays flat
        model, epochs = train(
            config, spec, data.pool.take(labelled), data.val, seed * 1000 + round_, warm
        )
        train_seconds = time.perf_counter() - start
        measured = held_out(model, data.schema, data.test)
        row = {"strategy": strategy, "seed": seed, "round": round_, "n_labelled": len(labelled)}
        row |= {"test_loss": measured.pop("test_loss"), "truth_mae": measured.pop("truth_mae")}
        row |= {"epochs": epochs, "train_seconds": train_seconds}
        row |= {"acquire_seconds": acquire_seconds, **measured}
        rows.append(row)
        if on_round is not None:
            on_round(row)
        if round_ == config.rounds:
            break
        start = time.perf_counter()
        rest = np.setdiff1d(np.arange(len(data.pool)), labelled)
        picked = choose(config, strategy, model, data.schema, data.pool.take(rest), seed, round_)
        labelled = np.concatenate([labelled, rest[picked]])
        acquire_seconds = time.perf_counter() - start
    return rows


@dataclass
class LoopResult:
    config: ActiveLearningConfig
    curves: pd.DataFrame  # CURVE_COLUMNS + test_loss/<question>; a row per strategy, seed, round
    baseline_loss: float  # held-out loss of the image-blind model (validation-set fractions)

    def mean_curves(self) -> pd.DataFrame:
        """Mean and standard deviation over seeds, per strategy and number of labels."""
        grouped = self.curves.groupby(["strategy", "n_labelled"])[["test_loss", "truth_mae"]]
        return grouped.agg(["mean", "std"]).reset_index()

    def labels_to_match(self, strategy: str, metric: str = "test_loss") -> float:
        """Labels the strategy's mean curve needs to reach random's final mean value (linear
        interpolation between rounds; NaN if it never does)."""
        means = self.curves.groupby(["strategy", "n_labelled"])[metric].mean()
        target = means["random"].iloc[-1]
        return labels_to_reach(means[strategy].index.to_numpy(), means[strategy].to_numpy(), target)


def labels_to_reach(n_labelled: np.ndarray, values: np.ndarray, target: float) -> float:
    """The first n where the piecewise-linear curve falls to `target` (NaN if never)."""
    for i, value in enumerate(values):
        if value <= target:
            if i == 0:
                return float(n_labelled[0])
            before = values[i - 1]
            share = (before - target) / (before - value)
            return float(n_labelled[i - 1] + share * (n_labelled[i] - n_labelled[i - 1]))
    return float("nan")


def closed_loop(config: ActiveLearningConfig, data: LoopData,
                on_round: Callable[[dict], None] | None = None) -> LoopResult:  # fmt: skip
    """Every strategy for every seed (seed-major, so a partial run still pairs strategies)."""
    from gz_experiments.errors import UserError
    from gz_experiments.metrics import baseline_concentrations, baseline_loss
    from gz_experiments.votes.information import acquisition_column_names

    try:
        acquisition_column_names(data.schema, config.questions or None)
    except ValueError as exc:
        raise UserError(f"questions={','.join(config.questions)}: {exc}") from None
    rows = []
    for seed in config.seeds:
        for strategy in config.strategies:
            rows += run_strategy(config, data, strategy, seed, on_round)
    alphas = baseline_concentrations(data.val.counts, data.schema)
    return LoopResult(config, pd.DataFrame(rows),
                      baseline_loss(data.test.counts, alphas, data.schema))  # fmt: skip
