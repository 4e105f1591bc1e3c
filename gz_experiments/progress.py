"""Progress bars only for a person watching: not in CI, not into a log file (where tqdm's
carriage returns pile up into one unreadable line)."""

from __future__ import annotations

import os
import sys


def show_progress(requested: bool = True) -> bool:
    if not requested or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return sys.stderr.isatty()
