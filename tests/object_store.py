"""An S3-API server for tests: moto's standalone server (`moto_server`, from the [dev] extra).

It is an emulator of the S3 API, not AWS: what it proves is that the project's S3 clients
(fsspec/s3fs for shards, MLflow's boto3 artifact store) speak the protocol to an endpoint given
the standard way (AWS_ENDPOINT_URL, MLFLOW_S3_ENDPOINT_URL), not how AWS itself behaves (IAM,
consistency, multi-part limits). `s3_server()` starts it on a free loopback port as a real
process, waits until it answers, yields its URL and stops it by PID.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .postgres import free_port

# The emulator accepts any keys; these only keep boto3 from looking for real ones.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "emulator",
    "AWS_SECRET_ACCESS_KEY": "emulator",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server(log: Path, timeout: float = 30) -> Iterator[str]:
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.exists() and shutil.which("moto_server") is None:
        pytest.skip("no S3-API server: pip install 'moto[server]' (in [dev])")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
        try:
            _wait_until_up(url, server, timeout)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_until_up(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto_server exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).close()  # ListBuckets
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"moto_server did not answer {url} within {timeout:.0f} s")
