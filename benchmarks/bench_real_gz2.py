"""Real data: Galaxy Zoo 2 galaxies from the Kaggle "Galaxy Challenge", their vote fractions as
labels, held-out RMSE next to a train-mean baseline.

Exact command (from the repo root, venv active):

    python -m benchmarks.bench_real_gz2                           # the recommended setting
    python -m benchmarks.bench_real_gz2 --count-modes pseudo,fractional   # both label forms

../shared/data/gz2_kaggle_424 (3,824 SDSS colour JPEGs, 424 px, Kaggle's cumulative vote fractions
for 17 of its 37 columns) goes through the project's own steps as library calls: ingest
(release kaggle-gz2, fractions -> votes by --count-modes with --n-volunteers) -> shard (seeded
70/10/20 split; `real` preset) -> train (`real` preset unless overridden) -> MC-dropout
predictions on the held-out test split. Scored with Kaggle's metric against the ORIGINAL
fractions of the file: RMSE over every test galaxy x the 17 columns, the model's joint fractions
(fraction x p_asked through the kaggle-gz2 tree) against Kaggle's values; next to the baseline
that predicts the training split's mean of each column for every galaxy, and their ratio.
Target: ratio <= 0.55 in under 30 minutes on 2 CPU cores. Nothing is logged to MLflow.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.train_flags import add_train_flags, real_train_config
from gz_experiments.config import IngestConfig, Sampling, ShardConfig
from gz_experiments.schema import get_schema

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "gz2_kaggle_424"
TREE = "kaggle-gz2"
# Kaggle questions in the subset, for the per-question table (Class number -> our question).
QUESTIONS = {1: "smooth-or-featured", 2: "disk-edge-on", 6: "something-odd", 7: "how-rounded",
             8: "odd-feature"}  # fmt: skip


def kaggle_values(data: Path) -> pd.DataFrame:
    table = pd.read_csv(data / "catalog.csv", dtype={"id_str": str}).set_index("id_str")
    return table[[c for c in table.columns if c.startswith("Class")]]


def prepare(data: Path, work: Path, mode: str, n_volunteers: int, shard_overrides: dict):
    from gz_experiments.ingest.run import run_ingest
    from gz_experiments.shards.writer import run_shard

    ingest = run_ingest(
        IngestConfig.resolve(
            "real", sources=str(data / "catalog.csv"), releases=TREE,
            images=str(data / "images"), out=str(work / f"ingest-{mode}"), count_mode=mode,
            n_volunteers=n_volunteers, overwrite=True,
        )
    )  # fmt: skip
    config = ShardConfig.resolve(
        "real", catalog=str(ingest.catalog), shard_dir=str(work / f"shards-{mode}"), schema=TREE,
        fractional_votes=ingest.fractional_votes, **shard_overrides,
    )  # fmt: skip
    result = run_shard(config)
    result.check()
    return result.manifest


def columns_of(schema, kaggle: pd.DataFrame) -> list[int]:
    """Our answer index of each Kaggle column present (Class i.j -> question i, answer j)."""
    from gz_experiments.ingest.fractions import kaggle_columns

    ours = kaggle_columns(schema)
    return [ours.index(c) for c in kaggle.columns]


def score(manifest, model, spec, kaggle: pd.DataFrame, n_samples: int) -> dict:
    from gz_experiments.evaluation.inputs import predict_split
    from gz_experiments.evaluation.protocol import mean_expected_fractions

    schema = manifest.schema
    predictions = predict_split(model, spec, manifest, "test", Sampling(n_samples=n_samples))
    joint = schema.joint_fractions(mean_expected_fractions(predictions.concentrations, schema))
    cols = columns_of(schema, kaggle)
    truth = kaggle.loc[predictions.ids].to_numpy(float)
    train_ids = pd.read_parquet(manifest.catalog_path("train"))["id_str"]
    mean = kaggle.loc[train_ids].to_numpy(float).mean(axis=0)
    model_error = joint[:, cols] - truth
    base_error = mean[None, :] - truth
    report = {
        "n_test": len(truth),
        "rmse": float(np.sqrt(np.mean(model_error**2))),
        "baseline": float(np.sqrt(np.mean(base_error**2))),
    }
    for number, question in QUESTIONS.items():
        mask = [c.startswith(f"Class{number}.") for c in kaggle.columns]
        report[question] = (
            float(np.sqrt(np.mean(model_error[:, mask] ** 2))),
            float(np.sqrt(np.mean(base_error[:, mask] ** 2))),
        )
    report["ratio"] = report["rmse"] / report["baseline"]
    return report


def run_mode(args, mode: str, kaggle: pd.DataFrame, work: Path) -> dict:
    from gz_experiments.training.run import run_train

    seconds = {}
    start = time.monotonic()
    shard = {
        k: v
        for k, v in (("img_size", args.img_size), ("greyscale", args.greyscale))
        if v is not None
    }
    manifest = prepare(Path(args.data), work, mode, args.n_volunteers, shard)
    seconds["ingest+shard"] = time.monotonic() - start
    config = real_train_config(args, shard_dir=str(manifest.shard_dir), schema=TREE)
    if args.greyscale is not None:
        config = config.replace(greyscale=args.greyscale)
    start = time.monotonic()
    result = run_train(config, manifest, work_dir=work / f"train-{mode}")
    seconds["train"] = time.monotonic() - start
    start = time.monotonic()
    report = score(manifest, result.fit.model, result.fit.spec, kaggle, args.n_samples)
    seconds["evaluate"] = time.monotonic() - start
    return {"mode": mode, "config": config, "fit": result.fit, "seconds": seconds, **report,
            "baseline_val_loss": result.baseline_val_loss}  # fmt: skip


def print_report(results: list[dict]) -> None:
    print(f"\n== Real GZ2 (Kaggle) held-out test: {results[0]['n_test']} galaxies, 17 columns ==")
    print(f"{'labels':<12} {'RMSE':>7} {'baseline':>9} {'ratio':>6} {'target':>7} {'minutes':>8}")
    for r in results:
        minutes = sum(r["seconds"].values()) / 60
        print(f"{r['mode']:<12} {r['rmse']:>7.4f} {r['baseline']:>9.4f} {r['ratio']:>6.3f} "
              f"{'<=0.55':>7} {minutes:>8.1f}")  # fmt: skip
    print(f"\n{'question (Kaggle class)':<28}" + "".join(f"{r['mode']:>22}" for r in results))
    for number, question in QUESTIONS.items():
        cells = "".join(f"{r[question][0]:>10.4f} vs {r[question][1]:<8.4f}" for r in results)
        print(f"{question + f' ({number})':<28}{cells}")
    for r in results:
        c, f = r["config"], r["fit"]
        print(f"\n{r['mode']}: {c.architecture}, shards -> crop {c.crop_fraction} -> {c.image_size} px, "
              f"{'grey' if c.greyscale else 'colour'}, batch {c.batch_size}, lr {c.learning_rate}, "
              f"dropout {c.dropout}; {f.epochs_run} epochs (best {f.best_epoch}, limit {c.epochs}); "
              f"val loss {f.best_val_loss:.3f} vs image-blind {r['baseline_val_loss']:.3f}; "
              + ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items()))  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--count-modes", default="pseudo", help="pseudo, fractional or both")
    parser.add_argument("--n-volunteers", type=int, default=40)
    parser.add_argument("--n-samples", type=int, default=5, help="MC-dropout passes")
    parser.add_argument("--img-size", type=int, default=None, help="shard side (real preset's)")
    add_train_flags(parser)
    parser.add_argument("--greyscale", type=lambda t: t.lower() == "true", default=None)
    parser.add_argument("--work-dir", default="", help="keep shards and checkpoints here")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not (Path(args.data) / "catalog.csv").is_file():
        raise SystemExit(
            f"{args.data}/catalog.csv not found: the GZ2 images live in ../shared/data"
        )
    kaggle = kaggle_values(Path(args.data))
    get_schema(TREE)
    with tempfile.TemporaryDirectory(prefix="gz-bench-gz2-") as tmp:
        work = Path(args.work_dir or tmp)
        results = [run_mode(args, m.strip(), kaggle, work) for m in args.count_modes.split(",")]
    print_report(results)


if __name__ == "__main__":
    main()
