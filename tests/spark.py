"""Spark for tests: pyspark (the `spark` extra, in `dev`) and a Java runtime (Debian's package).

`require_java()` finds `java` (JAVA_HOME, else PATH) at version 17 or newer, as pyspark 4 needs;
as root with apt-get it installs Debian's openjdk-17-jre-headless when there is none (as
tests/postgres.py does for PostgreSQL); otherwise the test is skipped with the reason.
`local_spark()` starts the project's own loopback-only `local[2]` session.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from .postgres import free_port

JAVA_PACKAGE = "openjdk-17-jre-headless"
MIN_JAVA = 17


def java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major(java: str) -> int:
    """17 from 'openjdk version "17.0.15"', 8 from '"1.8.0_392"'; 0 if it does not run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        return 0
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def require_java() -> None:
    pytest.importorskip("pyspark", reason="pyspark is missing: pip install -e '.[spark]'")
    java = java_binary()
    if java and java_major(java) >= MIN_JAVA:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"no Java {MIN_JAVA}+ for Spark (apt-get install {JAVA_PACKAGE}, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", JAVA_PACKAGE]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    java = java_binary()
    if not java or java_major(java) < MIN_JAVA:
        pytest.fail(f"{JAVA_PACKAGE} installed, but no Java {MIN_JAVA}+ at {java}")


@contextmanager
def local_spark() -> Iterator:
    """The session the predict step starts for spark_master=local[2], kept for a whole module
    (the steps under test find it active and leave it running)."""
    require_java()
    from gz_experiments.prediction.spark import start_session

    session = start_session("local[2]")
    try:
        yield session
    finally:
        session.stop()


@contextmanager
def standalone_cluster(work_dir: Path, timeout: float = 90) -> Iterator[str]:
    """A real Spark standalone master and one worker (1 core) on free loopback ports, started
    with `spark-class` (pip's pyspark has no sbin scripts); yields `spark://127.0.0.1:<port>`
    once the worker has registered, and stops both by PID. The daemons run outside the venv,
    as on a worker node (PATH without it: `python3` there is not this Python)."""
    require_java()
    spark_class = str(Path(sys.executable).parent / "spark-class")
    port, ui_port = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    daemons = [
        "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
        "--webui-port", str(ui_port),
    ], [
        "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores", "1",
        "--memory", "1g", "--webui-port", str(free_port()), "--work-dir", str(work_dir),
    ]  # fmt: skip
    processes: list[subprocess.Popen] = []
    with ExitStack() as logs:
        try:
            for daemon in daemons:
                log = logs.enter_context(
                    (work_dir / f"{daemon[0].rsplit('.', 1)[1]}.log").open("wb")
                )
                command = [spark_class, *daemon]
                processes.append(subprocess.Popen(command, stdout=log, stderr=log, env=node_env()))
            _wait_for_worker(ui_port, processes, work_dir, timeout)
            yield master
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def node_env() -> dict[str, str]:
    """This environment as a node's daemon would have it: no venv on PATH, SPARK_HOME set."""
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYSPARK_PYTHON")}
    import pyspark

    # spark-class finds its jars from SPARK_HOME, else by asking `python` for pyspark.
    return {**env, "PATH": os.pathsep.join(path), "SPARK_HOME": str(Path(pyspark.__file__).parent)}


def _wait_for_worker(ui_port: int, processes: list[subprocess.Popen], logs: Path, timeout: float):
    """Until the master's status page (JSON) lists an ALIVE worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            pytest.fail(f"a Spark daemon exited at start: see Master.log / Worker.log in {logs}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as page:
                workers = json.load(page).get("workers", [])
            if any(w.get("state") == "ALIVE" for w in workers):
                return
        except (OSError, ValueError):
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"no Spark worker registered with the master within {timeout:.0f} s")
