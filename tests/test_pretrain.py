"""The `pretrain` pipeline: its wiring (a fake runner: what each step is given), and the one
command of docs/steps/pretrain.md run as written by the installed `gz` script on real GZ1 classes
and GZD-5 votes: five child runs, per-campaign test metrics on the parent, a registered model
that finetune takes like any other."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from gz_experiments import pretrain
from gz_experiments.config import ConfigError, PretrainConfig
from gz_experiments.errors import UserError
from gz_experiments.finished_run import FinishedRun

from .conftest import REPO, shared_data

PAGE = REPO / "docs" / "steps" / "pretrain.md"


class FakeRunner:
    """Records each step's parameters and answers with what the real steps record."""

    def __init__(self, reused=()):
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.reused = set(reused)

    def run(self, entry_point, parameters, outputs_exist=None):
        self.calls.append((entry_point, parameters))
        tags = {
            "combine": {
                "gz.catalog": "/w/combined/catalog.parquet",
                "gz.tree_file": "/w/combined/tree.yaml",
            },  # fmt: skip
            "register": {"gz.model_version": "3"},
        }.get(entry_point, {})
        metrics = {
            "train": {"best_val_loss": 5.0, "baseline_val_loss": 6.0, "epoch_time": 1.0},
            "evaluate": {
                "test/mean_accuracy": 0.8,
                "test/campaign/gz1/mean_accuracy": 0.9,
                "test/campaign/gz1/n_galaxies": 40.0,
                "test/smooth/accuracy": 0.5,
                "test/campaign/gzd5/mean_mae": 0.1,
            },  # fmt: skip
        }.get(entry_point, {})
        return FinishedRun(entry_point, f"{entry_point}-id", reused=entry_point in self.reused,
                           tags=tags, metrics=metrics, artifact_uri="file:///store")  # fmt: skip


def config(**changes) -> PretrainConfig:
    values = {"catalogs": "a/gz1.csv,/data/b.parquet", "trees": "gz1,own/tree.yaml",
              "class_columns": "gz1=gz1_class_name", "out": "work", **changes}  # fmt: skip
    return PretrainConfig.from_strings("debug", values)


def test_each_step_gets_the_outputs_of_the_steps_before_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = FakeRunner()
    result = pretrain.run_pretrain(config(extra="train.epochs=3,shard.img_size=64"), runner)
    calls = dict(runner.calls)
    assert [name for name, _ in runner.calls] == list(pretrain.STEPS)
    # Child runs start in the project folder: the user's relative paths arrive absolute.
    assert calls["combine"]["catalogs"] == f"{tmp_path}/a/gz1.csv,/data/b.parquet"
    assert calls["combine"]["trees"] == f"gz1,{tmp_path}/own/tree.yaml"
    assert calls["combine"]["class_columns"] == "gz1=gz1_class_name"
    assert calls["combine"]["out"] == f"{tmp_path}/work/combined"
    assert calls["shard"] == {"preset": "debug", "catalog": "/w/combined/catalog.parquet",
                              "schema": "/w/combined/tree.yaml", "overwrite": "true",
                              "shard_dir": f"{tmp_path}/work/shards", "fractional_votes": "false",
                              "img_size": "64"}  # fmt: skip
    assert calls["train"] == {"preset": "debug", "shard_dir": f"{tmp_path}/work/shards",
                              "schema": "/w/combined/tree.yaml", "campaign_balance": "equal",
                              "epochs": "3"}  # fmt: skip
    assert calls["evaluate"]["model_uri"] == "runs:/train-id/model"
    assert calls["register"] == {"name": "gz-foundation", "run_id": "train-id"}
    assert result.registered_uri == "models:/gz-foundation/3"
    # The parent carries train's losses and the test split's overall and per-campaign means.
    assert result.headline_metrics() == {
        "best_val_loss": 5.0, "baseline_val_loss": 6.0, "test/mean_accuracy": 0.8,
        "test/campaign/gz1/mean_accuracy": 0.9, "test/campaign/gz1/n_galaxies": 40.0,
        "test/campaign/gzd5/mean_mae": 0.1,
    }  # fmt: skip
    text = pretrain.summary_text(result, ui_command="gz ui", parent_run_id="p-id", elapsed=60)
    for expected in ("1.0 min", "models:/gz-foundation/3", "/w/combined/tree.yaml", "p-id",
                     "gz finetune --model-uri models:/gz-foundation/3", "combine    combine-id"):  # fmt: skip
        assert expected in text, expected


def test_bad_pretrain_configs_are_refused_before_any_run():
    with pytest.raises(ConfigError, match="catalogs has 1 catalog"):
        config(catalogs="a.csv")
    with pytest.raises(ConfigError, match="out is empty"):
        config(out="")
    with pytest.raises(ConfigError, match="1 trees for 2 catalogs"):
        config(trees="gz1")
    with pytest.raises(UserError, match="one of combine, shard, train, evaluate, register"):
        pretrain.run_pretrain(config(extra="predict.split=test"), FakeRunner())


def docs_commands() -> list[str]:
    """The `gz pretrain` commands of the step's page (a command may continue over lines)."""
    text = PAGE.read_text().replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.startswith("gz pretrain ")]


def test_the_pages_real_scale_command_is_a_valid_config():
    """The page's second command (the real preset; not run by the suite, too long) is a valid
    config; the first, which the test below runs as written, differs from it in preset and out."""
    commands = docs_commands()
    assert len(commands) == 2 and "--preset debug" in commands[0] and "--preset real" in commands[1]
    flags = shlex.split(commands[1])[2:]
    values = {flags[i][2:].replace("-", "_"): flags[i + 1] for i in range(0, len(flags), 2)}
    parsed = PretrainConfig.from_strings(values.pop("preset"), values)
    assert parsed.campaign_balance == "equal" and len(parsed.catalogs) == 2
    debug = shlex.split(commands[0])[2:]
    assert {f for f in debug if f.startswith("--")} <= {f for f in flags if f.startswith("--")}


@pytest.mark.e2e
def test_the_docs_pretrain_command_runs_as_written_and_registers_a_model_finetune_takes(
    tracking, tmp_path
):
    shared_data("gz1_sdss_64"), shared_data("gzd5_real_128")
    command = shlex.split(docs_commands()[0])
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "Traceback" not in done.stderr

    client = MlflowClient()
    runs = client.search_runs([os.environ["MLFLOW_EXPERIMENT_ID"]])
    parent = next(r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "pretrain"
                  or r.info.run_name == "pretrain")  # fmt: skip
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(pretrain.STEPS)
    assert all(r.info.status == "FINISHED" for r in [parent, *children])
    # Per-campaign test metrics on the parent: the derived tree's two campaigns.
    metrics = parent.data.metrics
    for campaign in ("gz1", "gzd5"):
        assert metrics[f"test/campaign/{campaign}/n_galaxies"] > 0, campaign
    assert 0 <= metrics["test/campaign/gz1/mean_accuracy"] <= 1
    assert metrics["best_val_loss"] > 0

    version = client.get_model_version_by_alias("gz-foundation", "champion")
    train = next(r for r in children if r.info.run_name == "train")
    assert version.run_id == train.info.run_id
    assert re.search(r"Registered model:\s+models:/gz-foundation/1", done.stdout)
    assert "gz finetune --model-uri models:/gz-foundation/1" in done.stdout

    # An ordinary registered model: finetune takes it, on the pretrain's own shards and tree.
    from entry_points import finetune as finetune_entry

    shards = parent.data.tags["gz.catalog"].replace("combined/catalog.parquet", "shards")
    finetune_entry.main(["--preset", "debug", "--model-uri", "models:/gz-foundation@champion",
                         "--shard-dir", shards, "--mode", "last_n_blocks",
                         "--head-warmup-epochs", "1", "--verbose", "0"])  # fmt: skip
    tuned = client.search_runs(
        [os.environ["MLFLOW_EXPERIMENT_ID"]], "attributes.run_name = 'finetune'"
    )
    assert tuned and tuned[0].info.status == "FINISHED"
    assert tuned[0].data.metrics["warmup/epochs_run"] == 1


def test_the_readme_shows_the_command_the_suite_runs():
    readme = [line for line in (REPO / "README.md").read_text().splitlines()
              if line.startswith("gz pretrain ")]  # fmt: skip
    assert readme == docs_commands()[:1]
