"""The `gz` command: one sub-command per step, the same flags as the MLproject's parameters."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from entry_points import gz
from gz_experiments.config import STEP_CONFIGS

from .conftest import REPO


def help_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        gz.main(argv)
    assert info.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_step_in_pipeline_order_then_ui(capsys):
    out = help_of(["--help"], capsys)
    listed = re.findall(r"^  (\S+)  ", out, flags=re.M)
    assert listed == [*STEP_CONFIGS, gz.UI]
    assert listed.index("simulate") < listed.index("shard") < listed.index("train")
    assert all(line.strip() for line in out.splitlines()[4 : 4 + len(listed)])


@pytest.mark.parametrize("step", list(STEP_CONFIGS))
def test_each_sub_command_takes_exactly_the_mlproject_parameters(step, capsys):
    project = yaml.safe_load((REPO / "MLproject").read_text())
    expected = {
        f"--{name.replace('_', '-')}" for name in project["entry_points"][step]["parameters"]
    }
    out = help_of([step, "--help"], capsys)
    assert out.startswith(f"usage: gz {step} ")
    options = out.split("\noptions:\n")[1]
    shown = set(re.findall(r"^  (?:-h, )?(--[a-z][a-z0-9-]*)", options, flags=re.M)) - {"--help"}
    assert shown == expected


def test_a_sub_command_is_the_entry_point_itself():
    import entry_points.train

    assert gz.step_main("train") is entry_points.train.main


def test_unknown_step_and_no_step_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        gz.main(["trian"])
    assert info.value.code == 2
    assert "unknown step 'trian'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        gz.main([])
    assert info.value.code == 2 and "usage: gz" in capsys.readouterr().out


def test_the_installed_console_script_runs():
    script = Path(sys.executable).parent / "gz"
    if not script.exists():
        pytest.skip("gz is not installed in this environment: pip install -e .")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Steps, in pipeline order" in done.stdout


def test_ui_points_at_the_experiment_in_the_model_training_view(tracking, monkeypatch, tmp_path):
    import mlflow

    from gz_experiments.tracking.ui import experiment_url, store_uri

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "test")
    experiment = mlflow.get_experiment_by_name("test").experiment_id
    url = experiment_url("http://h:1", tracking)
    assert url == f"http://h:1/#/experiments/{experiment}/runs?workflowType=machine_learning"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "nothing-here")
    assert experiment_url("http://h:1", tracking) == "http://h:1/#/?workflowType=machine_learning"
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert experiment_url("http://h:1", missing).startswith("http://h:1/#/")
    assert not (tmp_path / "none.db").exists()  # looking did not create a store
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert store_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_the_console_script_exits_0_after_a_step_succeeds(tmp_path):
    """setuptools' `gz` wrapper calls sys.exit(main()): a returned step result would exit 1."""
    gz_script = Path(sys.executable).parent / "gz"
    done = subprocess.run([str(gz_script), "simulate", "--preset", "debug", "--out-dir",
                           str(tmp_path / "sim"), "--n-workers", "1"], capture_output=True,
                          text=True, timeout=300, env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Result(" not in done.stderr  # no result object printed as an exit message
