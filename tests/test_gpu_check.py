"""benchmarks/gpu_check.py: one line and exit 0 without a GPU; every row runs (CPU smoke test)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "benchmarks.gpu_check", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_cpu_only_machine_gets_one_line_and_exit_0():
    out = gpu_check()
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "gpu_check: no GPU visible to TensorFlow (CPU-only machine): nothing to measure."
    ]


@pytest.mark.slow
def test_every_row_runs_on_a_cpu_when_allowed(tmp_path):
    out = gpu_check(
        "--allow-cpu", "--architecture", "small_cnn", "--size", "16", "--batch", "4",
        "--steps", "1", "--epochs", "1", "--preset", "debug",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "img/s" in line]
    checks = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert checks == ["train, 1 GPU"] * 4 + [
        "predict, MC dropout x5 (head)",
        "debug preset, epoch 1",
    ]
    assert all(float(row.split(" | ")[3].split()[0]) > 0 for row in rows)
