"""Worker processes that die with their parent.

A spawned worker (shard decoding, simulation, tune trials) normally outlives a parent killed with
SIGKILL and keeps using memory and cores for minutes. On Linux the kernel can deliver a signal
to a process when its parent dies (prctl PR_SET_PDEATHSIG); workers ask for SIGKILL at start.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent exits (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    # The parent as multiprocessing recorded it when spawning us: it may already be dead (a
    # worker still importing its modules when its parent was killed), and then getppid() is 1.
    spawner = multiprocessing.parent_process()
    parent = spawner.pid if spawner is not None else os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
