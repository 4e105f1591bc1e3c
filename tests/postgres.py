"""A throwaway PostgreSQL server for tests (Debian's `postgresql` package).

`running_postgres()` finds initdb/pg_ctl under /usr/lib/postgresql/*/bin (as root it installs the
package with apt-get when they are missing; otherwise the test is skipped), initialises a cluster
in a fresh temp dir with trust authentication, starts it on a free loopback port with its socket
in that dir, creates a database, yields its URL, and stops the server with `pg_ctl stop`.
PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_ROOT = Path("/usr/lib/postgresql")


def pg_bin_dir() -> Path | None:
    """The newest installed server's bin dir, if any."""
    dirs = [d / "bin" for d in PG_ROOT.glob("*") if (d / "bin" / "pg_ctl").exists()]
    dirs = [d for d in dirs if (d / "initdb").exists()]
    return max(dirs, key=lambda d: float(d.parent.name), default=None)


def install_postgres() -> Path:
    if pg_bin_dir() is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql, as root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "postgresql"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
    found = pg_bin_dir()
    if found is None:
        pytest.fail(f"postgresql installed but no initdb/pg_ctl under {PG_ROOT}/*/bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_owner(command: list[str]) -> list[str]:
    """Run as `postgres` when we are root (the server will not run as root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres(database: str = "gz_test") -> Iterator[str]:
    """A started server; yields postgresql://postgres@127.0.0.1:<port>/<database>."""
    bin_dir = install_postgres()
    # Our own dir under /tmp: pytest's tmp_path sits in a root-only (0700) folder.
    base = Path(tempfile.mkdtemp(prefix="gz-postgres-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
    data, port = base / "data", free_port()

    def run(*command: str | Path) -> None:
        subprocess.run(_as_owner([str(c) for c in command]), check=True, capture_output=True)

    run(bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base}"
    options += " -c fsync=off"  # a throwaway cluster: durability buys nothing
    run(bin_dir / "pg_ctl", "-D", data, "-l", base / "server.log", "-o", options, "-w", "start")
    try:
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        run(bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Another database on the same server (e.g. one for MLflow, one for Optuna)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"
