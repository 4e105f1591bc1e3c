"""What pretraining on several campaigns buys a new task with few labels, on real galaxies only.

Exact commands (repo root, venv active):

    python -m benchmarks.bench_foundation                   # sizes 100,300,1000,all; 3 repeats
    python -m benchmarks.bench_foundation --sizes 100,300,all --repeats 2 --max-epochs 30
    python -m benchmarks.bench_foundation --sizes 100,300 --parents all --head-warmup 0,3 \
        --pretrain-epochs 60 --max-epochs 40 --patience 6      # head warm-up, side by side
    python -m benchmarks.bench_foundation --sizes 60,all --repeats 1 --max-per-campaign 500 \
        --pretrain-epochs 2 --max-epochs 2 --min-steps 2                     # smoke, ~3 min

Campaigns, from ../shared/data (each on its own tree, 64 px colour, as bench_finetune):
- gz1: 6,664 SDSS galaxies with their Galaxy Zoo 1 class (one vote each, tree gz1);
- gz2: 3,824 SDSS galaxies with Kaggle GZ2 vote fractions (ingest kaggle-gz2, pseudo-counts);
- gzd5: the DECaLS galaxies of gzd5_real_128 that have GZD-5 first-question votes (28 of 470).

Each campaign's galaxies are split once (seeded): 20 % held out as its child task's test set, the
rest its pool. Parents (small_cnn, crop 0.65 -> 64 px), trained on pools only, so no held-out
galaxy is in any parent (checked by id before any training): one parent per campaign with at
least --min-parent pool galaxies (gz1, gz2), and `all`, every campaign's pool through the
`combine` step with campaign_balance=equal.

Child tasks: gz1 (3-class accuracy: elliptical / spiral / edge-on, argmax among them) and gz2
(Kaggle RMSE over its 17 columns, as a ratio to predicting the pool's mean). gzd5 has too few
labelled galaxies for a child task (reported). For each size N, N training + N/4 validation
galaxies are drawn from the task's pool (seeded per repeat; --repeats at N <= 300, one above),
and each arm trains on the same draw: `scratch`, and finetuned (mode all, layer decay) from each
parent. Mean ± spread (population standard deviation) over repeats.

Read the `from <campaign>` rows with care: a parent trained on the task's own campaign has seen
the pool's labels of that very question (as GZ Evo saw the campaigns later finetuned on); the
other campaign's parent is transfer to a new question. GZ1 and Kaggle GZ2 are both SDSS under
different ids and Kaggle gives no coordinates, so a galaxy may sit in one campaign's test set and
the other's pool: that cannot be checked here. Nothing is logged to MLflow.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_finetune import Parent, draw, held_out_split, steps_per_epoch
from gz_experiments.catalog import FILE_COL, ID_COL
from gz_experiments.config import (
    CombineConfig,
    FinetuneConfig,
    IngestConfig,
    ShardConfig,
    TrainConfig,
)
from gz_experiments.schema import Schema, get_schema

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TREES = {"gz1": "gz1", "gz2": "kaggle-gz2", "gzd5": "gzd5"}
TASKS = ("gz1", "gz2")
GZ1_CLASSES = ("elliptical", "spiral", "edge-on")
# The settings of bench_finetune's GZ1 parent and arms (small_cnn converges on 2 CPU cores).
MODEL = {"architecture": "small_cnn", "crop_fraction": 0.65, "image_size": 64, "greyscale": False}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,300,1000,all", help="training galaxies per row")
    p.add_argument("--repeats", type=int, default=3, help="draws (and seeds) at sizes <= 300")
    p.add_argument("--pretrain-epochs", type=int, default=60)
    p.add_argument("--min-parent", type=int, default=500, help="pool size for a parent of its own")
    p.add_argument("--parents", default="", help="e.g. all or gz1,all; '' = every one")
    p.add_argument(
        "--head-warmup",
        default="0",
        help="finetune arms per parent by head_warmup_epochs, e.g. 0,3 (side by side)",
    )
    p.add_argument("--max-per-campaign", type=int, default=0, help="0 = every galaxy")
    p.add_argument("--img-size", type=int, default=64,
                   help="stored side of the shards (the model sees the central 0.65 at 64 px)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--layer-decay", type=float, default=0.75)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--min-steps", type=int, default=25, help="training steps per epoch, at least")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-workers", type=int, default=0, help="decode processes; 0 = all cores")
    p.add_argument("--work-dir", default="", help="shards and checkpoints; '' = a temp folder")
    return p.parse_args(argv)


# ---- the campaigns ---------------------------------------------------------------------------


def campaign_catalogs(args, work: Path) -> dict[str, pd.DataFrame]:
    """Campaign -> its standard catalog (id_str, absolute file_loc, votes on its own tree)."""
    from gz_experiments.catalog import load_catalog
    from gz_experiments.ingest.run import run_ingest

    out = {}
    gz1 = load_catalog(DATA / "gz1_sdss_64" / "catalog.csv", get_schema("gz1"),
                       class_column="gz1_class_name", check_files=False)  # fmt: skip
    out["gz1"] = gz1
    kaggle = DATA / "gz2_kaggle_424"
    ingested = run_ingest(IngestConfig.resolve(
        "paper", sources=str(kaggle / "catalog.csv"), releases="kaggle-gz2",
        images=str(kaggle / "images"), out=str(work / "kaggle"), count_mode="pseudo",
    ))  # fmt: skip
    out["gz2"] = pd.read_parquet(ingested.catalog)
    decals = pd.read_csv(DATA / "gzd5_real_128" / "catalog.csv")
    labelled = decals[decals["smooth-or-featured_total-votes"].notna()].copy()
    labelled[FILE_COL] = [str(DATA / "gzd5_real_128" / f) for f in labelled[FILE_COL]]
    labelled.to_csv(work / "gzd5.csv", index=False)
    out["gzd5"] = load_catalog(work / "gzd5.csv", get_schema("gzd5"), missing_questions="zero",
                               check_files=False)  # fmt: skip
    for name, table in out.items():
        cols = [c for c in get_schema(TREES[name]).label_cols if c in table.columns]
        table = table[[ID_COL, FILE_COL, *cols]].copy()
        table[ID_COL] = table[ID_COL].astype(str)
        if args.max_per_campaign:
            table = table.head(args.max_per_campaign)
        out[name] = table.reset_index(drop=True)
    return out


def split_campaigns(catalogs: dict[str, pd.DataFrame], args):
    """(test, pool) per campaign: one seeded held-out set, the same for every arm and parent."""
    return {name: held_out_split(table, args) for name, table in catalogs.items()}


def check_excluded(splits, parents_pools: dict[str, set[str]]) -> None:
    """No galaxy of any child task's test set may be in any parent's training data."""
    for task, (test, _) in splits.items():
        for parent, ids in parents_pools.items():
            shared = set(test[ID_COL]) & ids
            if shared:
                raise AssertionError(
                    f"{len(shared)} galaxies of {task}'s test set are in parent {parent}'s data"
                )


# ---- parents ---------------------------------------------------------------------------------


def shard(catalog: Path, schema: str, folder: Path, args, seed: int, val: float):
    from gz_experiments.shards.writer import run_shard

    result = run_shard(ShardConfig.resolve(
        "cpu", catalog=str(catalog), schema=schema, shard_dir=str(folder), img_size=args.img_size,
        greyscale=False, val_fraction=val, test_fraction=0.0, seed=seed,
        missing_questions="zero", n_workers=args.n_workers,
    ), progress=False)  # fmt: skip
    result.check()
    return result.manifest


def pretrain(name: str, catalog: Path, schema: str, args, work: Path, **extra) -> Parent:
    from gz_experiments.training.run import run_train

    start = time.monotonic()
    manifest = shard(catalog, schema, work / f"parent-{name}", args, seed=42, val=0.1)
    config = TrainConfig.resolve(
        "cpu", shard_dir=str(manifest.shard_dir), schema=schema, batch_size=64,
        epochs=args.pretrain_epochs, patience=10, learning_rate=5e-4, verbose=0, **MODEL, **extra,
    )  # fmt: skip
    result = run_train(config, manifest, work_dir=work / f"pretrain-{name}")
    seconds = time.monotonic() - start
    what = (f"{name}: {manifest.n_galaxies('train')} training galaxies, {result.fit.epochs_run} "
            f"epochs (best {result.fit.best_epoch}), val loss {result.best_val_loss:.3f} vs "
            f"image-blind {result.baseline_val_loss:.3f}, {seconds:.0f} s")  # fmt: skip
    return Parent(result.fit.model, result.fit.spec, seconds, what)


def parents(splits, args, work: Path) -> dict[str, Parent]:
    from gz_experiments.combine import run_combine

    pools = {}
    for name, (_, pool) in splits.items():
        pools[name] = work / f"pool-{name}.parquet"
        pool.to_parquet(pools[name], index=False)
    wanted = set(args.parents.split(",")) if args.parents else None
    singles = [n for n, (_, pool) in splits.items()
               if len(pool) >= args.min_parent and (wanted is None or n in wanted)]  # fmt: skip
    trained_on = {n: set(pool[ID_COL]) for n, (_, pool) in splits.items() if n in singles}
    trained_on["all"] = set().union(*(set(pool[ID_COL]) for _, pool in splits.values()))
    check_excluded(splits, trained_on)
    out = {}
    for name in singles:
        out[name] = pretrain(name, pools[name], TREES[name], args, work)
        print(f"parent {out[name].description}", flush=True)
    combined = run_combine(CombineConfig.resolve(
        "cpu", catalogs=",".join(str(p) for p in pools.values()), trees=",".join(TREES[n] for n in pools),
        campaigns=",".join(pools), out=str(work / "combined"), missing_questions="zero",
    ))  # fmt: skip
    assert combined.rows_read == sum(len(pool) for _, pool in splits.values())
    if wanted is not None and "all" not in wanted:
        return out
    out["all"] = pretrain("all", combined.catalog, str(combined.tree_file), args, work,
                          campaign_balance="equal")  # fmt: skip
    print(f"parent {out['all'].description}", flush=True)
    return out


# ---- children --------------------------------------------------------------------------------


def train_arm(
    arm: str, manifest, schema: str, parent: Parent | None, seed: int, work: Path, args,
    warmup: int = 0,
):  # fmt: skip
    from gz_experiments.training.finetune import run_finetune
    from gz_experiments.training.run import run_train

    common = dict(
        shard_dir=str(manifest.shard_dir), schema=schema, batch_size=args.batch_size,
        epochs=args.max_epochs, patience=args.patience, learning_rate=args.learning_rate,
        steps_per_epoch=steps_per_epoch(manifest, args), seed=seed, verbose=0,
    )  # fmt: skip
    start = time.monotonic()
    if parent is None:
        config = TrainConfig.resolve("cpu", **MODEL, **common)
        fitted = run_train(config, manifest, work_dir=work).fit
    else:
        config = FinetuneConfig.resolve(
            "cpu", model_uri="bench", mode="all", layer_decay=args.layer_decay,
            head_warmup_epochs=warmup, **common,
        )  # fmt: skip
        fitted = run_finetune(config, parent.model, parent.spec, manifest, work).train.fit
    return fitted.model, fitted.epochs_run, time.monotonic() - start


def arms(trained: dict[str, Parent], args) -> list[tuple[str, Parent | None, int]]:
    """(name, parent, head warm-up epochs): scratch, then each parent at each warm-up."""
    out: list[tuple[str, Parent | None, int]] = [("scratch", None, 0)]
    for name, parent in trained.items():
        for warmup in (int(w) for w in args.head_warmup.split(",")):
            label = f"from {name}" + (f", warm-up {warmup}" if warmup else "")
            out.append((label, parent, warmup))
    return out


@dataclass
class TestSet:
    images: np.ndarray
    votes: np.ndarray  # the task tree's label order
    truth: pd.DataFrame | None  # gz2: Kaggle's cumulative fractions


def load_test(task: str, test: pd.DataFrame, spec) -> TestSet:
    from gz_experiments.prediction.inputs import resolve_inputs

    inputs = resolve_inputs(test[[ID_COL, FILE_COL]], spec)
    ids, images = [], []
    for batch in inputs.batches(256):
        ids += batch.ids
        if batch.ids:
            images.append(batch.images)
    if len(ids) != len(test):
        raise AssertionError(f"{task}: {len(test) - len(ids)} test images could not be read")
    rows = test.set_index(ID_COL).loc[ids]
    votes = rows[get_schema(TREES[task]).label_cols].to_numpy(np.float64)
    truth = None
    if task == "gz2":
        kaggle = pd.read_csv(DATA / "gz2_kaggle_424" / "catalog.csv", dtype={ID_COL: str})
        columns = [c for c in kaggle.columns if c.startswith("Class")]
        truth = kaggle.set_index(ID_COL).loc[ids, columns].reset_index(drop=True)
    return TestSet(np.concatenate(images), votes, truth)


def score(task: str, model, test: TestSet, reference: float) -> float:
    """gz1: 3-class accuracy; gz2: Kaggle RMSE / the pool mean's RMSE (lower is better)."""
    from gz_experiments.ingest.fractions import kaggle_table, rmse_kaggle

    schema: Schema = get_schema(TREES[task])
    alphas = np.concatenate([model(test.images[i : i + 256], training=False).numpy()
                             for i in range(0, len(test.images), 256)])  # fmt: skip
    fractions = schema.fractions_within_questions(alphas)  # the Dirichlet means
    if task == "gz1":
        cols = [schema.answer(f"gz1-class_{c}").index for c in GZ1_CLASSES]
        keep = test.votes[:, cols].sum(axis=1) > 0
        true = test.votes[keep][:, cols].argmax(axis=1)
        return float(np.mean(fractions[keep][:, cols].argmax(axis=1) == true))
    predicted = kaggle_table(fractions, schema)
    return rmse_kaggle(test.truth, predicted) / reference


def reference_rmse(pool: pd.DataFrame, test: TestSet) -> float:
    from gz_experiments.ingest.fractions import rmse_kaggle

    kaggle = pd.read_csv(DATA / "gz2_kaggle_424" / "catalog.csv", dtype={ID_COL: str})
    mean = kaggle.set_index(ID_COL).loc[pool[ID_COL], test.truth.columns].mean()
    guess = pd.DataFrame([mean.to_numpy()] * len(test.truth), columns=test.truth.columns)
    return rmse_kaggle(test.truth, guess)


def shard_draw(task: str, subset: pd.DataFrame, folder: Path, repeat: int, args):
    folder.mkdir(parents=True, exist_ok=True)
    subset.to_parquet(folder / "catalog.parquet", index=False)
    return shard(folder / "catalog.parquet", TREES[task], folder / "shards", args, repeat, 0.2)


# ---- the table -------------------------------------------------------------------------------

METRIC = {"gz1": ("3-class accuracy", "higher"), "gz2": ("RMSE / pool-mean RMSE", "lower")}


def print_table(rows: list[dict], parents_: dict[str, Parent], splits, args) -> None:
    table = pd.DataFrame(rows)
    print("\n== Foundation models on real galaxies: child tasks, finetuned vs scratch ==")
    print("configuration: " + json.dumps(vars(args), sort_keys=True))
    for parent in parents_.values():
        print(f"parent {parent.description}")
    for task, group in table.groupby("task", sort=False):
        metric, better = METRIC[task]
        print(
            f"\n-- {task}: {metric} ({better} is better), {len(splits[task][0])} held-out galaxies --"
        )
        arms = list(dict.fromkeys(group["arm"]))
        widths = [max(17, len(a)) for a in arms]
        print(f"{'train':>6} " + " ".join(f"{a:>{w}}" for a, w in zip(arms, widths, strict=True)))
        for _, rows_ in group.groupby("size_label", sort=False):
            cells = []
            for arm in arms:
                values = rows_[rows_["arm"] == arm]["score"]
                cells.append(f"{values.mean():.4f} ± {values.std(ddof=0):.4f}")
            line = " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
            print(f"{rows_['n_train'].iloc[0]:>6} {line}")
        verdict(task, group, better)
    print(f"\ngzd5: {sum(len(s) for s in splits['gzd5'])} labelled DECaLS galaxies: in the all "
          f"parent only, too few for a child task")  # fmt: skip
    print(
        f"total wall time {table['seconds'].sum() + sum(p.seconds for p in parents_.values()):.0f} s"
    )


def verdict(task: str, group: pd.DataFrame, better: str) -> None:
    sign = 1 if better == "higher" else -1
    mean = group.groupby(["size_label", "arm"])["score"].mean()

    def at_least(a: float, b: float) -> bool:
        return sign * (a - b) >= 0

    if ("all", "scratch") in mean and ("300", "from all") in mean:
        few, full = mean[("300", "from all")], mean[("all", "scratch")]
        print(f"target: all-campaign parent with 300 labels {few:.4f} vs scratch with all "
              f"{full:.4f} -> {'met' if at_least(few, full) else 'NOT met'}")  # fmt: skip
    singles = [
        a for a in set(group["arm"]) if a.startswith("from ") and not a.startswith("from all")
    ]
    if singles and ("300", "from all") in mean:
        best = max((mean[("300", a)] * sign, a) for a in singles if ("300", a) in mean)[1]
        won = at_least(mean[("300", "from all")], mean[("300", best)])
        print(f"at 300 labels the all-campaign parent {'beats or ties' if won else 'loses to'} "
              f"the best single-campaign parent ({best}): {mean[('300', 'from all')]:.4f} vs "
              f"{mean[('300', best)]:.4f}")  # fmt: skip
    if ("all", "from all") in mean:
        target = 0.92 if task == "gz1" else 0.50
        value = mean[("all", "from all")]
        print(f"target ({'>=' if sign > 0 else '<='} {target}) with all labels from the all "
              f"parent: {value:.4f} -> {'met' if at_least(value, target) else 'NOT met'}")  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    print("configuration: " + json.dumps(vars(args), sort_keys=True), flush=True)
    with tempfile.TemporaryDirectory(prefix="gz-bench-foundation-") as tmp:
        work = Path(args.work_dir or tmp)
        splits = split_campaigns(campaign_catalogs(args, work), args)
        trained = parents(splits, args, work)
        rows = []
        for task in TASKS:
            test_rows, pool = splits[task]
            test = load_test(task, test_rows, trained["all"].spec)
            reference = reference_rmse(pool, test) if task == "gz2" else 1.0
            for size in args.sizes.split(","):
                small = size != "all" and int(size) <= 300
                for repeat in range(args.repeats if small else 1):
                    subset = draw(pool, size, repeat, args)
                    folder = work / "draws" / f"{task}-{size}-{repeat}"
                    manifest = shard_draw(task, subset, folder, repeat, args)
                    for arm, parent, warmup in arms(trained, args):
                        model, epochs, seconds = train_arm(
                            arm, manifest, TREES[task], parent, repeat,
                            folder / arm.replace(" ", "-").replace(",", ""), args, warmup,
                        )  # fmt: skip
                        row = {"task": task, "size_label": size, "arm": arm, "repeat": repeat,
                               "n_train": manifest.n_galaxies("train"), "epochs": epochs,
                               "seconds": seconds, "score": score(task, model, test, reference)}  # fmt: skip
                        print(json.dumps(row), flush=True)
                        rows.append(row)
        print_table(rows, trained, splits, args)


if __name__ == "__main__":
    main()
