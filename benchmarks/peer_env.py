"""The PyTorch peer's virtualenv (zoobot 2.9.0 on torch 2.13.0+cpu), built on first use, and a
runner for `benchmarks/peer_zoobot.py` inside it. Stdlib only, so our side's benchmarks import it
from the project venv:

    from benchmarks.peer_env import run_peer
    rows = run_peer(["--sizes", "64,128", "--train-steps", "4"])   # one dict per JSON line

The peer is not a dependency of the project, so its venv lives outside the tree, at
`${GZ_CACHE_DIR:-~/.cache/gz_experiments}/peer-zoobot-venv`. The recipe (measured here: ~100 s
from a warm pip cache, 1.9 GB), run by `peer_python()` and printed as it goes:

    python3.11 -m venv $VENV
    $VENV/bin/python -m pip install --dry-run --report R.json torch==2.13.0 'zoobot[pytorch]==2.9.0'
    $VENV/bin/python -m pip install torch==2.13.0 'zoobot[pytorch]==2.9.0'

torch is pinned in the same command as zoobot because zoobot, galaxy-datasets, timm and Lightning
all ask for an unbounded `torch`, which on its own resolves to a multi-GB CUDA build; the dry run
refuses any resolution that is not the CPU wheel on this machine's disk. The torchvision it brings
(0.28.0+cu130) cannot load its C++ operators beside the CPU torch; peer_zoobot.py copes with that.

Environment:
- GZ_PEER_PYTHON=/path/to/python: use that interpreter (an existing peer venv); never install.
- GZ_PEER_INSTALL=0: never install; use the venv only if a previous install completed.
- GZ_CACHE_DIR: where the venv goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REQUIREMENTS = ("torch==2.13.0", "zoobot[pytorch]==2.9.0")
TORCH_VERSION = "2.13.0+cpu"  # the CPU wheel on disk; PyPI's plain 2.13.0 is the CUDA build
PEER_SCRIPT = Path(__file__).with_name("peer_zoobot.py")
# written last, so a venv whose install was interrupted is never taken for a finished one
READY_MARKER = ".gz-peer-ready"
PIP_TIMEOUT_S = 1800  # bounds a pip that hangs on an unreachable index


class PeerUnavailable(Exception):
    """The peer venv cannot be had here; the message says why."""


def say(message: str) -> None:
    # stderr, so a benchmark's table on stdout stays clean
    print(f"[peer_env] {message}", file=sys.stderr, flush=True)


def venv_dir() -> Path:
    cache = Path(os.environ.get("GZ_CACHE_DIR") or "~/.cache/gz_experiments").expanduser()
    return cache / "peer-zoobot-venv"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _is_ready(venv: Path) -> bool:
    marker = venv / READY_MARKER
    return (
        _venv_python(venv).exists()
        and marker.exists()
        and marker.read_text().strip() == " ".join(REQUIREMENTS)
    )


def peer_python() -> Path | None:
    """The peer venv's python, building the venv on first use; None (with the reason printed)
    when there is none and it cannot or may not be built."""
    explicit = os.environ.get("GZ_PEER_PYTHON")
    if explicit:
        if Path(explicit).exists():
            return Path(explicit)
        say(f"GZ_PEER_PYTHON={explicit} does not exist; no peer")
        return None
    venv = venv_dir()
    if _is_ready(venv):
        return _venv_python(venv)
    if os.environ.get("GZ_PEER_INSTALL", "1") == "0":
        say(f"no finished peer venv at {venv} and GZ_PEER_INSTALL=0; no peer")
        return None
    try:
        with _install_lock(venv):
            if not _is_ready(venv):  # another process may have built it while we waited
                install(venv)
    except PeerUnavailable as err:
        say(f"cannot install the peer: {err}")
        return None
    return _venv_python(venv)


@contextlib.contextmanager
def _install_lock(venv: Path) -> Iterator[None]:
    """Two benchmarks starting at once must not build the same venv over each other."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install(venv: Path) -> None:
    """Run the recipe of the module docstring into `venv`, replacing an unfinished one."""
    started = time.monotonic()
    if venv.exists():
        say(f"removing the unfinished peer venv at {venv}")
        shutil.rmtree(venv)
    _run([_base_python(), "-m", "venv", str(venv)])
    python = _venv_python(venv)
    _check_resolution(python)
    _run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS])
    _run([str(python), "-c", "import torch, zoobot.shared.schemas; print(torch.__version__)"])
    (venv / READY_MARKER).write_text(" ".join(REQUIREMENTS) + "\n")
    say(
        f"peer venv ready in {time.monotonic() - started:.0f} s, "
        f"{_size_bytes(venv) / 1e9:.1f} GB: {venv}"
    )


def _base_python() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise PeerUnavailable("python3.11 not found (torch 2.13.0's CPU wheel is for 3.11)")
    return found


def _check_resolution(python: Path) -> None:
    """Dry run: install only if torch resolves to the CPU build and nothing pulls CUDA."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        _run(
            [str(python), "-m", "pip", "install", "--quiet", "--dry-run", "--report", str(report)]
            + list(REQUIREMENTS)
        )
        planned = {
            item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]
        }
    torch = planned.get("torch")
    cuda = sorted(name for name in planned if name.startswith("nvidia-"))
    if torch != TORCH_VERSION or cuda:
        raise PeerUnavailable(
            f"pip would install torch {torch} with {cuda or 'no nvidia packages'}, "
            f"not the CPU build {TORCH_VERSION} (is its wheel on this machine?)"
        )
    say(f"dry run: {len(planned)} packages, torch {torch}, no CUDA packages")


def _run(cmd: list[str]) -> None:
    say("$ " + " ".join(cmd))
    try:
        # pip's chatter to stderr, like ours
        subprocess.run(cmd, check=True, stdout=sys.stderr, timeout=PIP_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        raise PeerUnavailable(f"{cmd[0]} ... failed: {err}") from err


def _size_bytes(folder: Path) -> int:
    return sum(
        (Path(root) / name).lstat().st_size for root, _, files in os.walk(folder) for name in files
    )


def run_peer(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float | None = None
) -> list[dict]:
    """Run peer_zoobot.py with `args` in the peer venv and return its JSON lines as dicts.

    [] when there is no peer (the reason is printed), so a side-by-side benchmark can still
    report our side. `env` adds variables, e.g. glibc malloc tuning, which must be set before the
    process starts. The peer's progress goes to our stderr. Raises RuntimeError if it fails.
    """
    python = peer_python()
    if python is None:
        return []
    # -I: none of the project venv's PYTHONPATH or user site leaks into the peer
    cmd = [str(python), "-I", str(PEER_SCRIPT), *args]
    say("$ " + " ".join(cmd))
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peer_zoobot.py exited with {proc.returncode} (its stderr is above)")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
