"""A fingerprint of the code a step runs, so a finished run is reused only for identical code.

The git commit alone is not enough: a user who edits a module and re-runs `make demo` without
committing would get the old step's outputs back, and a README-only commit would needlessly
re-run everything. Hashing the sources themselves gets both cases right, in or outside git.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

TAG = "gz.code_version"
# What decides a step's behaviour: the library, its CLIs, and how MLproject/pip wire them up.
SOURCE_GLOBS = ("gz_experiments/**/*.py", "gz_experiments/**/*.yaml", "entry_points/**/*.py")
SOURCE_FILES = ("MLproject", "pyproject.toml")


def package_root() -> Path:
    """The folder holding `gz_experiments/` (the project itself for `mlflow run` and editable
    installs, since `python -m entry_points.<step>` imports the package from the project)."""
    return Path(__file__).resolve().parents[2]


@functools.cache
def code_version(root: str | Path | None = None) -> str:
    """sha256 (16 hex digits) over the relative paths and bytes of the project's sources."""
    root = Path(root).resolve() if root is not None else package_root()
    files = {p for pattern in SOURCE_GLOBS for p in root.glob(pattern) if p.is_file()}
    files |= {root / name for name in SOURCE_FILES if (root / name).is_file()}
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
