"""Pretraining on several campaigns at once, on real galaxies: Kaggle GZ2 vote fractions (through
ingest, so the catalog names its own tree) and GZ1 SDSS classes (one label per galaxy) combined
on their derived tree, sharded, trained with balanced campaigns, evaluated per campaign, and the
model finetuned on a new task - through the entry points, as a user runs them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entry_points import combine as combine_entry
from entry_points import evaluate as evaluate_entry
from entry_points import finetune as finetune_entry
from entry_points import shard as shard_entry
from entry_points import train as train_entry
from gz_experiments.campaigns import example_weights
from gz_experiments.config import CombineConfig, EvaluateConfig, IngestConfig, TrainConfig
from gz_experiments.errors import UserError
from gz_experiments.tracking.runs import last_run_id

from .conftest import REPO, shared_data

N = 48  # galaxies per campaign: enough for 8-galaxy batches in every split


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    """A Kaggle GZ2 catalog written by ingest (its tree noted in it) and a GZ1 class csv."""
    from gz_experiments.ingest.run import run_ingest

    folder = tmp_path_factory.mktemp("campaigns")
    kaggle = shared_data("gz2_kaggle_424")
    ingested = run_ingest(IngestConfig.resolve(
        "paper", sources=str(kaggle / "catalog.csv"), releases="kaggle-gz2",
        images=str(kaggle / "images"), out=str(folder / "kaggle"), max_rows=N,
    ))  # fmt: skip
    gz1 = shared_data("gz1_sdss_64")
    table = pd.read_csv(gz1 / "catalog.csv").head(N)
    table["file_loc"] = [str(gz1 / f) for f in table["file_loc"]]
    table.to_csv(folder / "gz1.csv", index=False)
    return ingested.catalog, folder / "gz1.csv"


def combine_args(catalogs, out, *extra):
    kaggle, gz1 = catalogs
    return ["--catalogs", f"{kaggle},{gz1}", "--trees", "auto,gz1", "--campaigns", "gz2,gz1",
            "--class-columns", "gz1=gz1_class_name", "--out", str(out), *extra]  # fmt: skip


@pytest.mark.e2e
def test_two_campaigns_pretrain_balanced_evaluate_per_campaign_and_finetune(
    tracking, catalogs, tmp_path, capsys
):
    out = tmp_path / "pretrain"
    combine_entry.main(combine_args(catalogs, out))
    printed = capsys.readouterr().out
    assert f"read {2 * N} rows from 2 catalogs: {2 * N} galaxies" in printed
    assert "next: mlflow run . -e shard" in printed and "tree.yaml" in printed
    run = MlflowClient().get_run(last_run_id())
    assert run.info.run_name == "combine"
    metrics = run.data.metrics
    assert metrics["rows_read"] == metrics["n_galaxies"] == 2 * N
    assert metrics["campaign/gz2/n_galaxies"] == metrics["campaign/gz1/n_galaxies"] == N
    assert len(run.data.tags["gz.campaign.gz1.sha256"]) == 64
    manifest = json.loads((out / "combine.json").read_text())
    assert manifest["tree"]["campaigns"] == {"gz2": "-gz2", "gz1": "-gz1"}

    # one vote for each GZ1 class, nothing for the GZ2 questions (never asked: zero loss)
    catalog = pd.read_parquet(out / "catalog.parquet")
    gz1_rows = catalog["sources"] == "gz1"
    gz1_cols = [c for c in catalog.columns if c.startswith("gz1-class-gz1_") and "total" not in c]
    assert (catalog.loc[gz1_rows, gz1_cols].sum(axis=1) == 1).all()
    gz2_cols = [c for c in catalog.columns if c.endswith("-gz2") is False and "-gz2_" in c]
    assert (catalog.loc[gz1_rows, gz2_cols].to_numpy() == 0).all()
    assert (catalog.loc[~gz1_rows, gz1_cols].to_numpy() == 0).all()

    shards, tree = tmp_path / "shards", out / "tree.yaml"
    shard_entry.main(["--preset", "debug", "--catalog", str(out / "catalog.parquet"),
                      "--schema", str(tree), "--shard-dir", str(shards), "--n-workers", "1",
                      "--val-fraction", "0.2", "--test-fraction", "0.2"])  # fmt: skip
    train_args = ["--preset", "debug", "--shard-dir", str(shards), "--schema", str(tree),
                  "--batch-size", "8", "--epochs", "1", "--campaign-balance", "equal"]  # fmt: skip
    train_entry.main(train_args)
    train_run = mlflow.get_run(last_run_id())
    weights = {c: train_run.data.metrics[f"campaign/{c}/loss_weight"] for c in ("gz2", "gz1")}
    assert weights["gz2"] > 0 and weights["gz1"] > 0
    assert train_run.data.params["train.campaign_balance"] == "equal"
    assert "val_loss/gz1-class-gz1" in train_run.data.metrics  # per question, every campaign

    # the batches training read carried exactly these weights (campaigns.example_weights)
    from gz_experiments.shards.manifest import load_manifest
    from gz_experiments.training.fit import TrainingData

    manifest = load_manifest(shards)
    config = TrainConfig.from_strings("debug", {"shard_dir": str(shards), "schema": str(tree),
                                                "batch_size": "8", "campaign_balance": "equal"})  # fmt: skip
    data = TrainingData(config, manifest)
    _, counts, got = next(iter(data.train(0)))
    assert len(next(iter(data.val))) == 2  # validation is not weighted
    expected = example_weights(manifest.schema, weights, counts.numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)

    evaluate_entry.run(EvaluateConfig.resolve(
        "debug", model_uri=f"runs:/{train_run.info.run_id}/model", shard_dir=str(shards),
        split="test",
    ))  # fmt: skip
    logged = mlflow.get_run(last_run_id()).data.metrics
    for campaign in ("gz2", "gz1"):
        assert logged[f"test/campaign/{campaign}/n_galaxies"] >= 1
        assert f"test/campaign/{campaign}/mean_accuracy" in logged

    # the pretrained model is an ordinary one: finetune takes it for a task of its own
    gz1_shards = tmp_path / "gz1-shards"
    shard_entry.main(["--preset", "debug", "--catalog", str(catalogs[1]), "--schema", "gz1",
                      "--class-column", "gz1_class_name", "--shard-dir", str(gz1_shards),
                      "--n-workers", "1"])  # fmt: skip
    finetune_entry.main(["--preset", "debug", "--model-uri", f"runs:/{train_run.info.run_id}/model",
                         "--shard-dir", str(gz1_shards), "--batch-size", "8", "--epochs", "1"])  # fmt: skip
    child = mlflow.get_run(last_run_id())
    assert child.info.run_name == "finetune" and child.info.status == "FINISHED"

    # finetune shares train's loop: balanced campaigns on the combined shards as well
    finetune_entry.main(["--preset", "debug", "--model-uri", f"runs:/{train_run.info.run_id}/model",
                         "--shard-dir", str(shards), "--batch-size", "8", "--epochs", "1",
                         "--campaign-balance", "equal"])  # fmt: skip
    balanced = mlflow.get_run(last_run_id()).data
    assert balanced.params["finetune.campaign_balance"] == "equal"
    assert balanced.metrics["campaign/gz1/loss_weight"] == weights["gz1"]


def test_bad_inputs_are_one_line_naming_file_row_or_campaign(catalogs, tmp_path):
    kaggle, gz1 = catalogs
    from gz_experiments.combine import run_combine

    def combine(**changes):
        values = {"catalogs": f"{kaggle},{gz1}", "trees": "auto,gz1", "campaigns": "gz2,gz1",
                  "class_columns": {"gz1": "gz1_class_name"}, "out": str(tmp_path / "o"), **changes}  # fmt: skip
        return run_combine(CombineConfig.resolve("cpu", **values))

    with pytest.raises(UserError, match="does not say its tree"):
        combine(trees="auto,auto")  # a csv does not carry its tree
    with pytest.raises(UserError, match=r"class_columns names campaign\(s\) \['gz9'\]"):
        combine(class_columns={"gz9": "gz1_class_name"})
    with pytest.raises(UserError, match="two catalogs are campaign 'gz1'"):
        combine(campaigns="gz1,gz1")
    with pytest.raises(UserError, match="given twice"):
        combine(catalogs=f"{gz1},{gz1}", trees="gz1,gz1", campaigns="a,b",
                class_columns={"a": "gz1_class_name", "b": "gz1_class_name"})  # fmt: skip
    bad = pd.read_csv(gz1)
    bad.loc[3, "gz1_class_name"] = "lenticular"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(
        UserError, match=r"bad.csv: column 'gz1_class_name' has labels \['lenticular'\]"
    ):
        combine(catalogs=f"{kaggle},{tmp_path / 'bad.csv'}")
    with pytest.raises(Exception, match="catalogs has 1 catalog"):
        CombineConfig.resolve("cpu", catalogs=str(gz1), out="x")

    done = combine()
    assert done.n_galaxies == 2 * N
    with pytest.raises(UserError, match="overwrite=true"):
        combine()


def test_a_galaxy_in_two_catalogs_is_one_row_with_both_campaigns_votes(catalogs, tmp_path):
    """As ingest merges release files: the first listed catalog's image, each campaign's votes."""
    from gz_experiments.combine import run_combine

    _, gz1 = catalogs
    table = pd.read_csv(gz1)
    table.head(10).to_csv(tmp_path / "a.csv", index=False)
    table.iloc[5:20].to_csv(tmp_path / "b.csv", index=False)
    result = run_combine(CombineConfig.resolve(
        "cpu", catalogs=f"{tmp_path / 'a.csv'},{tmp_path / 'b.csv'}", trees="gz1,gz1",
        campaigns="first,second", out=str(tmp_path / "o"),
        class_columns={"first": "gz1_class_name", "second": "gz1_class_name"},
    ))  # fmt: skip
    assert result.rows_read == 25 and result.n_galaxies == 20
    assert [c.galaxies_also_in_earlier for c in result.campaigns] == [0, 5]
    catalog = pd.read_parquet(result.catalog)
    both = catalog[catalog["sources"] == "first+second"]
    assert len(both) == 5
    assert (
        both.filter(like="-first_").drop(columns="gz1-class-first_total-votes").sum(axis=1) == 1
    ).all()
    assert (
        both.filter(like="-second_").drop(columns="gz1-class-second_total-votes").sum(axis=1) == 1
    ).all()


PAGE = REPO / "docs" / "steps" / "combine.md"


@pytest.mark.e2e
def test_the_docs_combine_command_runs_as_written(tracking, tmp_path):
    """The combine page's `gz combine` line, run by the real console script in its own process."""
    shared_data("gz1_sdss_64"), shared_data("gzd5_real_128")
    lines = [line for line in PAGE.read_text().splitlines() if line.startswith("gz combine ")]
    assert len(lines) == 1, "docs/steps/combine.md should show one `gz combine ...` command"
    done = subprocess.run(shlex.split(lines[0]), cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    gz1 = len(pd.read_csv(REPO.parent / "shared/data/gz1_sdss_64/catalog.csv"))
    decals = len(pd.read_csv(REPO.parent / "shared/data/gzd5_real_128/catalog.csv"))
    assert f"read {gz1 + decals} rows from 2 catalogs" in done.stdout
    out = Path(shlex.split(lines[0])[shlex.split(lines[0]).index("--out") + 1])
    catalog = pd.read_parquet(out / "catalog.parquet")
    assert len(catalog) == gz1 + decals  # distinct ids: every row is a galaxy of its own
    assert set(catalog["sources"]) == {"gz1", "gzd5"}
    runs = MlflowClient().search_runs([os.environ["MLFLOW_EXPERIMENT_ID"]])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("combine", "FINISHED")]
