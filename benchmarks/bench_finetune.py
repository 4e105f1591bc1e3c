"""Label efficiency on real images: pretrain once, then learn a real GZ2 task from 100 / 300 /
1,000 / all training galaxies, finetuned vs from scratch, on one fixed held-out test set.

Exact commands (repo root, venv active):

    python -m benchmarks.bench_finetune          # the full version: about 1 h on 2 quiet cores
    python -m benchmarks.bench_finetune --sizes 60,all --repeats 1 --max-galaxies 400 \
        --pretrain-max 600 --pretrain-epochs 1 --max-epochs 2 --min-steps 2       # smoke, ~2 min

Pretraining (`--pretrain gz1`, default): ../shared/data/gz1_sdss_64, 6,664 real SDSS colour
images at 64 px with Galaxy Zoo 1 majority classes (one vote each, gz1 tree), small_cnn, crop
0.65 -> 64 px, as benchmarks/bench_real_gz1.py. `--pretrain sim`: the cpu preset's simulated
default dataset (gzd5 tree, greyscale). `--parent-model-uri` reuses a model instead.

Task: ../shared/data/gz2_kaggle_424 (3,824 SDSS 424 px JPEGs, Kaggle GZ2 cumulative vote
fractions for 17 of 37 columns) -> ingest release kaggle-gz2 (pseudo-counts, 40 volunteers) ->
shards at the parent's stored size. A seeded 20 % is the held-out test set, the same for every
row. From the rest, each size N draws (seeded per repeat) N training galaxies plus N/4 for
validation (early stopping): a labelled budget of 1.25 N. "all" = the whole remainder (80/20).

Arms, each on the same shards: `scratch` (the parent's architecture, crop and size, fresh
weights), and finetuned from the parent with each `--modes` (all: every block, layer decay;
frozen: the head only). Same batch size, learning rate, epochs, patience and steps per epoch
(at least --min-steps, so 100 galaxies still get enough updates between validations).

Held-out metrics: `loss` = Dirichlet-multinomial NLL per galaxy, summed over questions (the
training loss, dropout off); `rmse` = Kaggle's score over its 17 columns present (cumulative
fractions from the expected vote fractions of 5 MC-dropout passes); `acc_q1` = accuracy of the
first question (smooth / features / star), volunteers' vs the model's most likely answer.
Mean ± standard deviation over repeats. Nothing is logged to MLflow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.config import FinetuneConfig, IngestConfig, Sampling, ShardConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TREE = "kaggle-gz2"


@dataclass
class Parent:
    model: object
    spec: object
    seconds: float  # pretraining wall time (0 for a given model)
    description: str


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrain", choices=("gz1", "sim"), default="gz1")
    p.add_argument("--parent-model-uri", default="", help="reuse this model; no pretraining")
    p.add_argument("--pretrain-epochs", type=int, default=60)
    p.add_argument("--pretrain-max", type=int, default=0, help="GZ1 galaxies; 0 = all 6,664")
    p.add_argument("--sizes", default="100,300,1000,all", help="training galaxies per row")
    p.add_argument("--repeats", type=int, default=3, help="draws (and seeds) per size")
    p.add_argument("--modes", default="all,frozen", help="finetune modes compared with scratch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3, help="scratch; finetuned head")
    p.add_argument("--layer-decay", type=float, default=0.75)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--min-steps", type=int, default=25, help="training steps per epoch, at least")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--max-galaxies", type=int, default=0, help="task galaxies; 0 = all 3,824")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-workers", type=int, default=0, help="decode processes; 0 = all cores")
    p.add_argument("--work-dir", default="", help="shards and checkpoints; '' = a temp folder")
    return p.parse_args(argv)


# ---- the parent ------------------------------------------------------------------------------


def pretrain(args, work: Path) -> Parent:
    from gz_experiments.tracking.models import load_galaxy_model
    from gz_experiments.training.run import run_train, training_data

    if args.parent_model_uri:
        model, spec = load_galaxy_model(args.parent_model_uri)
        return Parent(model, spec, 0.0, f"given: {args.parent_model_uri}")
    start = time.monotonic()
    if args.pretrain == "sim":
        config = TrainConfig.resolve("cpu", epochs=args.pretrain_epochs, verbose=2)
        manifest = training_data(config)
    else:
        manifest = shard_gz1(args, work)
        config = TrainConfig.resolve(
            "cpu", shard_dir=str(manifest.shard_dir), schema="gz1", greyscale=False,
            architecture="small_cnn", image_size=64, crop_fraction=0.65, batch_size=64,
            epochs=args.pretrain_epochs, patience=10, learning_rate=5e-4, verbose=2,
        )  # fmt: skip
    result = run_train(config, manifest, work_dir=work / "pretrain")
    seconds = time.monotonic() - start
    what = (
        f"{args.pretrain}: {manifest.n_galaxies('train')} training galaxies, "
        f"{result.fit.epochs_run} epochs (best {result.fit.best_epoch}), "
        f"val loss {result.best_val_loss:.3f} vs baseline {result.baseline_val_loss:.3f}"
    )
    return Parent(result.fit.model, result.fit.spec, seconds, what)


def shard_gz1(args, work: Path):
    from gz_experiments.shards.writer import run_shard

    config = ShardConfig.resolve(
        "cpu", catalog=str(DATA / "gz1_sdss_64" / "catalog.csv"), schema="gz1", img_size=64,
        greyscale=False, shard_size=2048, seed=42, class_column="gz1_class_name",
        max_labelled=args.pretrain_max, n_workers=args.n_workers,
        shard_dir=str(work / "gz1"),
    )  # fmt: skip
    result = run_shard(config)
    result.check()
    return result.manifest


# ---- the task --------------------------------------------------------------------------------


def ingest_task(args, work: Path) -> pd.DataFrame:
    from gz_experiments.ingest.run import run_ingest

    folder = DATA / "gz2_kaggle_424"
    result = run_ingest(
        IngestConfig.resolve(
            "paper", sources=str(folder / "catalog.csv"), releases=TREE, out=str(work / "task"),
            images=str(folder / "images"), count_mode="pseudo", max_rows=args.max_galaxies,
        )
    )  # fmt: skip
    return pd.read_parquet(result.catalog)


def held_out_split(catalog: pd.DataFrame, args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(test, pool): one seeded test set for every row of the table."""
    order = np.random.default_rng(args.seed).permutation(len(catalog))
    n_test = int(round(len(catalog) * args.test_fraction))
    shuffled = catalog.iloc[order].reset_index(drop=True)
    return shuffled.iloc[:n_test], shuffled.iloc[n_test:].reset_index(drop=True)


def draw(pool: pd.DataFrame, size: str, repeat: int, args) -> pd.DataFrame:
    """N training + N/4 validation galaxies (a labelled budget of 1.25 N), seeded per repeat."""
    n = len(pool) if size == "all" else min(len(pool), math.ceil(int(size) * 1.25))
    rows = np.random.default_rng([args.seed, repeat]).permutation(len(pool))[:n]
    return pool.iloc[np.sort(rows)]


def shard_subset(subset: pd.DataFrame, folder: Path, parent: Parent, repeat: int, args):
    from gz_experiments.shards.writer import run_shard

    folder.mkdir(parents=True, exist_ok=True)
    subset.to_parquet(folder / "catalog.parquet", index=False)
    config = ShardConfig.resolve(
        "cpu", catalog=str(folder / "catalog.parquet"), shard_dir=str(folder / "shards"),
        schema=TREE, img_size=parent.spec.img_size, greyscale=False, val_fraction=0.2,
        test_fraction=0.0, seed=repeat, n_workers=args.n_workers,
    )  # fmt: skip
    result = run_shard(config, progress=False)
    result.check()
    return result.manifest


# ---- training and scoring --------------------------------------------------------------------


def steps_per_epoch(manifest, args) -> int:
    return max(args.min_steps, manifest.n_galaxies("train") // args.batch_size)


def train_arm(arm: str, manifest, parent: Parent, repeat: int, work: Path, args):
    """(model, epochs run, seconds) of one arm on one draw."""
    from gz_experiments.training.finetune import run_finetune
    from gz_experiments.training.run import run_train

    common = dict(
        shard_dir=str(manifest.shard_dir), schema=TREE, batch_size=args.batch_size,
        epochs=args.max_epochs, patience=args.patience, learning_rate=args.learning_rate,
        steps_per_epoch=steps_per_epoch(manifest, args), seed=repeat, verbose=0,
    )  # fmt: skip
    start = time.monotonic()
    if arm == "scratch":
        spec = parent.spec
        config = TrainConfig.resolve(
            "cpu", architecture=spec.architecture, crop_fraction=spec.crop_fraction,
            image_size=spec.image_size, greyscale=spec.greyscale, **common,
        )  # fmt: skip
        fitted = run_train(config, manifest, work_dir=work).fit
    else:
        config = FinetuneConfig.resolve(
            "cpu", model_uri="bench", mode=arm, layer_decay=args.layer_decay, **common
        )
        fitted = run_finetune(config, parent.model, parent.spec, manifest, work).train.fit
    return fitted.model, fitted.spec, fitted.epochs_run, time.monotonic() - start


@dataclass
class TestSet:
    ids: list[str]
    images: np.ndarray
    counts: np.ndarray  # pseudo-counts, label order
    cumulative: pd.DataFrame  # Kaggle's own values for the columns the file has


def load_test(test: pd.DataFrame, parent: Parent) -> TestSet:
    """The held-out galaxies decoded once, as every model reads them (the parent's size)."""
    from gz_experiments.prediction.inputs import resolve_inputs

    inputs = resolve_inputs(test, parent.spec)
    ids, images = [], []
    for batch in inputs.batches(256):
        ids += batch.ids
        if batch.ids:
            images.append(batch.images)
    labelled = test.set_index("id_str").loc[ids]
    kaggle = pd.read_csv(DATA / "gz2_kaggle_424" / "catalog.csv", dtype={"id_str": str})
    columns = [c for c in kaggle.columns if c.startswith("Class")]
    truth = kaggle.set_index("id_str").loc[ids, columns].reset_index(drop=True)
    from gz_experiments.schema import get_schema

    counts = labelled[get_schema(TREE).label_cols].to_numpy(np.float64)
    return TestSet(ids, np.concatenate(images), counts, truth)


def score(model, spec, test: TestSet) -> dict[str, float]:
    from gz_experiments.evaluation.protocol import mean_expected_fractions
    from gz_experiments.ingest.fractions import kaggle_table, rmse_kaggle
    from gz_experiments.losses import dirichlet_multinomial_nll
    from gz_experiments.prediction.sampling import Sampler

    schema = spec.schema
    alphas = np.concatenate([model(test.images[i : i + 256], training=False).numpy()
                             for i in range(0, len(test.ids), 256)])  # fmt: skip
    loss = dirichlet_multinomial_nll(test.counts, alphas.astype(np.float64), schema)
    sampler = Sampler(model, Sampling(n_samples=5, batch_size=256))
    samples = np.concatenate([sampler(test.images[i : i + 256], test.ids[i : i + 256])
                              for i in range(0, len(test.ids), 256)])  # fmt: skip
    fractions = mean_expected_fractions(np.transpose(samples, (0, 2, 1)), schema)
    predicted = kaggle_table(fractions, schema)
    q1 = slice(schema.questions[0].start, schema.questions[0].end + 1)
    q1_true = test.cumulative[["Class1.1", "Class1.2", "Class1.3"]].to_numpy().argmax(axis=1)
    return {
        "loss": float(np.mean(np.sum(loss, axis=1))),
        "rmse": rmse_kaggle(test.cumulative, predicted),
        "acc_q1": float(np.mean(fractions[:, q1].argmax(axis=1) == q1_true)),
    }


def reference_rmse(pool: pd.DataFrame, test: TestSet) -> float:
    """Kaggle RMSE of predicting every test galaxy as the mean of the labelled pool."""
    from gz_experiments.ingest.fractions import rmse_kaggle

    kaggle = pd.read_csv(DATA / "gz2_kaggle_424" / "catalog.csv", dtype={"id_str": str})
    mean = kaggle.set_index("id_str").loc[pool["id_str"], test.cumulative.columns].mean()
    guess = pd.DataFrame([mean.to_numpy()] * len(test.ids), columns=test.cumulative.columns)
    return rmse_kaggle(test.cumulative, guess)


# ---- the table -------------------------------------------------------------------------------


def print_table(rows: list[dict], args, parent: Parent, test: TestSet, reference: float) -> None:
    table = pd.DataFrame(rows)
    print(f"\n== Label efficiency: GZ2 Kaggle, {len(test.ids)} held-out test galaxies, "
          f"RMSE over {test.cumulative.shape[1]} Kaggle columns ==")  # fmt: skip
    print(f"reference: the labelled pool's mean fractions for every galaxy, RMSE {reference:.4f}")
    header = (
        f"{'train':>6} {'arm':>8} {'loss':>15} {'rmse':>17} {'acc_q1':>15} {'epochs':>6} {'s':>6}"
    )
    print(header)
    for (_, arm), group in table.groupby(["size_label", "arm"], sort=False):
        size = group["n_train"].iloc[0]
        cells = [
            f"{group[m].mean():.4f} ± {group[m].std(ddof=0):.4f}"
            for m in ("loss", "rmse", "acc_q1")
        ]
        print(f"{size:>6} {arm:>8} {cells[0]:>15} {cells[1]:>17} {cells[2]:>15} "
              f"{group['epochs'].mean():>6.0f} {group['seconds'].mean():>6.0f}")  # fmt: skip
    print(f"\npretraining: {parent.description}; {parent.seconds:.0f} s")
    verdict(table)


def verdict(table: pd.DataFrame) -> None:
    scratch_all = table[(table.size_label == "all") & (table.arm == "scratch")]["rmse"].mean()
    if not ({"300", "all"} <= set(table.size_label)):
        print("target (finetuned with 300 labels vs scratch with all): needs sizes 300 and all")
    for arm in sorted(set(table.arm) - {"scratch"}):
        few = table[(table.size_label == "300") & (table.arm == arm)]["rmse"].mean()
        if math.isfinite(few) and math.isfinite(scratch_all):
            met = "met" if few <= scratch_all else "NOT met"
            print(f"target (finetuned {arm} with 300 labels RMSE <= scratch with all): "
                  f"{few:.4f} vs {scratch_all:.4f} -> {met}")  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    print("configuration: " + json.dumps(vars(args), sort_keys=True))
    arms = ["scratch", *[m for m in args.modes.split(",") if m]]
    with tempfile.TemporaryDirectory(prefix="gz-bench-finetune-") as tmp:
        work = Path(args.work_dir or tmp)
        parent = pretrain(args, work)
        print(f"parent: {parent.description} ({parent.seconds:.0f} s)", flush=True)
        test_rows, pool = held_out_split(ingest_task(args, work), args)
        test = load_test(test_rows, parent)
        rows = []
        for size in args.sizes.split(","):
            for repeat in range(args.repeats):
                subset = draw(pool, size, repeat, args)
                key = hashlib.sha256(f"{size}-{repeat}".encode()).hexdigest()[:8]
                manifest = shard_subset(subset, work / "draws" / key, parent, repeat, args)
                for arm in arms:
                    model, spec, epochs, seconds = train_arm(
                        arm, manifest, parent, repeat, work / "runs" / f"{key}-{arm}", args
                    )
                    row = {"size_label": size, "n_train": manifest.n_galaxies("train"),
                           "arm": arm, "repeat": repeat, "epochs": epochs, "seconds": seconds,
                           **score(model, spec, test)}  # fmt: skip
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        print_table(rows, args, parent, test, reference_rmse(pool, test))


if __name__ == "__main__":
    main()
