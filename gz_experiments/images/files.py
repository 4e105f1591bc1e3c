"""Reading an image file a user named: one descriptor, regular files only, never blocking.

    data = read_regular("cutouts/J0001.png", roots=(Path("/srv/images"),))   # bytes or FileRefused

Checking a path and then opening it is a race (a symbolic link swapped in between points the
open elsewhere), and `open()` on a named pipe blocks until a writer comes. So the path is opened
once, non-blocking; the opened descriptor is then checked: a regular file, and, when `roots` are
given, really inside one of them (its true path, read back from the descriptor through
/proc/self/fd, so links and `..` are already resolved by the kernel); the bytes are read from
that same descriptor. Standard library only (image readers import this module).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Where the kernel names an open descriptor's file (Linux). Elsewhere the resolved path is
# opened with O_NOFOLLOW instead, which leaves a race only on the folders above the file.
PROC_FD = Path("/proc/self/fd")
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class FileRefused(Exception):
    """A path that is not read; `.reason` is one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def read_regular(
    path: str | Path, roots: tuple[Path, ...] | None = None, max_bytes: int | None = None
) -> bytes:
    """The bytes of the regular file at `path`, read from the descriptor that was checked.

    `roots`: folders (resolved) the file must really be inside; None = anywhere.
    `max_bytes`: refuse a larger file before reading it.
    """
    fd = _open(path, roots)
    try:
        size = _check_regular(fd)
        if roots is not None and not _inside(_real_path(fd, path), roots):
            raise FileRefused("outside the allowed folders")
        if max_bytes is not None and size > max_bytes:
            raise FileRefused(f"the file is {size:,} bytes, more than {max_bytes:,}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def read_head(path: str | Path, n: int) -> bytes:
    """The first `n` bytes of a regular file; b"" for anything else (a pipe, a folder, missing)."""
    try:
        fd = _open(path, None)
    except FileRefused:
        return b""
    try:
        _check_regular(fd)
        return os.read(fd, n)
    except (FileRefused, OSError):
        return b""
    finally:
        os.close(fd)


def _open(path: str | Path, roots: tuple[Path, ...] | None) -> int:
    target, flags = path, OPEN_FLAGS
    if roots is not None and not PROC_FD.is_dir():
        target, flags = os.path.realpath(path), flags | os.O_NOFOLLOW
    try:
        return os.open(target, flags)
    except FileNotFoundError:
        raise FileRefused("file not found") from None
    except PermissionError:
        raise FileRefused("permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise FileRefused(
            f"cannot open: {exc.strerror if isinstance(exc, OSError) else exc}"
        ) from None


def _check_regular(fd: int) -> int:
    """The file's size; a pipe, socket, device or folder is refused (reading could block)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused("not a regular file (a folder, pipe, socket or device)")
    return info.st_size


def _real_path(fd: int, path: str | Path) -> Path:
    if PROC_FD.is_dir():
        return Path(os.readlink(PROC_FD / str(fd)))
    return Path(os.path.realpath(path))


def _inside(real: Path, roots: tuple[Path, ...]) -> bool:
    return any(real.is_relative_to(root) for root in roots)
