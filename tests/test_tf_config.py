"""What TF_CONFIG makes of a process (training/distributed.py): its role, the cluster's size,
and the one-line refusal when the multi-worker strategy comes too late."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gz_experiments.errors import UserError
from gz_experiments.training.distributed import is_chief, worker_count

from .conftest import REPO

TWO_WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


def set_tf_config(monkeypatch, cluster: dict, task_type: str, index: int) -> None:
    config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))


def test_worker_0_is_the_chief_unless_the_cluster_names_one(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief() and worker_count() == 1
    set_tf_config(monkeypatch, TWO_WORKERS, "worker", 0)
    assert is_chief() and worker_count() == 2
    set_tf_config(monkeypatch, TWO_WORKERS, "worker", 1)
    assert not is_chief()
    with_chief = {"chief": ["127.0.0.1:3"], **TWO_WORKERS}
    set_tf_config(monkeypatch, with_chief, "worker", 0)
    assert not is_chief() and worker_count() == 3
    set_tf_config(monkeypatch, with_chief, "chief", 0)
    assert is_chief()


def test_a_malformed_tf_config_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{'cluster': ")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        worker_count()


def test_the_strategy_after_tensorflow_ran_is_refused_in_one_line():
    script = (
        "import tensorflow as tf; tf.constant(1.0) + 1\n"
        "from gz_experiments.training.distributed import start_multi_worker\n"
        "start_multi_worker()\n"
    )
    config = {"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(config), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0
    assert "TF_CONFIG names 2 workers but TensorFlow already ran" in out.stderr
    assert "call gz_experiments.training.distributed.start_multi_worker() at program start" in (
        out.stderr
    )
