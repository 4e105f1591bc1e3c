"""Real release rows as users download them, end to end through the entry points: GZD-1/2 and
GZD-5 ingested into one decals-all catalog, sharded, trained (debug) and evaluated per campaign;
Kaggle GZ2 vote fractions ingested and sharded as fractional votes."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from entry_points import evaluate as evaluate_entry
from entry_points import ingest as ingest_entry
from entry_points import shard as shard_entry
from entry_points import train as train_entry
from gz_experiments.config import EvaluateConfig, IngestConfig
from gz_experiments.tracking.runs import last_run_id

from .conftest import shared_data


@pytest.mark.e2e
def test_gzd12_and_gzd5_train_together_and_evaluate_per_campaign(tracking, tmp_path, capsys):
    rows = shared_data("zenodo_format_rows") / "gz_decals"
    sources = f"{rows / 'gz_decals_volunteers_1_and_2.csv'},{rows / 'gz_decals_volunteers_5.csv'}"
    out = tmp_path / "decals"
    ingest_entry.main(["--preset", "debug", "--sources", sources, "--releases", "gzd12,gzd5",
                       "--images", str(rows), "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert "on tree decals-all" in printed and "next: mlflow run . -e shard" in printed
    run = MlflowClient().get_run(last_run_id())
    assert run.info.run_name == "ingest"
    metrics = run.data.metrics
    assert metrics["rows_read"] == metrics["rows_written"] + metrics["rows_rejected"] == 12
    assert run.data.tags["gz.tree"] == "decals-all"
    assert len(run.data.tags["gz.source0.sha256"]) == 64
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["decals"]
    catalog = pd.read_parquet(out / "catalog.parquet")
    dr12 = catalog.filter(like="-dr12_").sum(axis=1) > 0
    dr5 = catalog[["smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk",
                   "smooth-or-featured_artifact"]].sum(axis=1) > 0  # fmt: skip
    assert dr12.any() and dr5.any() and (dr12 | dr5).all()

    shards = tmp_path / "shards"
    shard_entry.main(["--preset", "debug", "--catalog", str(out / "catalog.parquet"),
                      "--schema", "decals-all", "--shard-dir", str(shards)])  # fmt: skip
    train_entry.main(["--preset", "debug", "--shard-dir", str(shards), "--schema", "decals-all",
                      "--batch-size", "4", "--epochs", "1"])  # fmt: skip
    train_run = last_run_id()
    result = evaluate_entry.run(
        EvaluateConfig.resolve(
            "debug", model_uri=f"runs:/{train_run}/model", shard_dir=str(shards), split="train"
        )
    )
    logged = mlflow.get_run(last_run_id()).data.metrics
    for campaign in ("gzd5", "gzd12"):
        assert f"train/campaign/{campaign}/mean_accuracy" in logged
        assert logged[f"train/campaign/{campaign}/n_galaxies"] >= 1
    assert result.evaluation.overall["n_galaxies"] == logged["train/n_galaxies"]


@pytest.mark.e2e
def test_kaggle_fractions_become_fractional_votes_the_shards_accept(tracking, tmp_path):
    data = shared_data("gz2_kaggle_424")
    subset = tmp_path / "kaggle.csv"
    pd.read_csv(data / "catalog.csv").head(30).to_csv(subset, index=False)
    out = tmp_path / "kaggle"
    result = ingest_entry.run(
        IngestConfig.resolve(
            "debug", sources=str(subset), releases="kaggle-gz2", images=str(data / "images"),
            out=str(out), count_mode="fractional",
        )
    )  # fmt: skip
    assert result.fractional_votes and result.rows_written == 30
    with pytest.raises(SystemExit):  # non-integer votes need the flag
        shard_entry.main(["--preset", "debug", "--catalog", str(result.catalog), "--schema",
                          "kaggle-gz2", "--shard-dir", str(tmp_path / "refused")])  # fmt: skip
    shard_entry.main(["--preset", "debug", "--catalog", str(result.catalog), "--schema",
                      "kaggle-gz2", "--fractional-votes", "true",
                      "--shard-dir", str(tmp_path / "shards")])  # fmt: skip
    assert (tmp_path / "shards" / "manifest.json").is_file()
