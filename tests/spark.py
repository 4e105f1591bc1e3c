"""Spark for tests: pyspark (the `spark` extra, in `dev`) and a Java runtime (Debian's package).

`require_java()` finds `java` (JAVA_HOME, else PATH) at version 17 or newer, as pyspark 4 needs;
as root with apt-get it installs Debian's openjdk-17-jre-headless when there is none (as
tests/postgres.py does for PostgreSQL); otherwise the test is skipped with the reason.
`local_spark()` starts the project's own loopback-only `local[2]` session.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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
