"""Atomic file writes, and write errors in one line naming the file and the cause."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Write a file so that a reader (or a crash) never sees it half-written: ``write(f)``
    fills a temporary file in the same folder, which then replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file 0600; give it the mode open() would (0666 less the umask),
            # so run folders shared between users or nodes stay readable after a rewrite
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


class WriteError(OSError):
    """A file of a run could not be written: one line naming the file and the cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, at most ``limit`` characters (for one-line errors)."""
    return (str(e).strip().splitlines() or [""])[0][:limit]


def os_cause(e: BaseException) -> str:
    """The cause of an ``OSError`` in words, with the hint that fixes it."""
    if not isinstance(e, OSError) or e.errno is None:
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    hints = {
        errno.EACCES: "choose a folder you can write to (or fix its permissions)",
        errno.EPERM: "choose a folder you can write to (or fix its permissions)",
        errno.EROFS: "the filesystem is read-only; choose another folder",
        errno.ENOSPC: "the disk is full; free some space",
        errno.EDQUOT: "the disk quota is used up; free some space",
        errno.EFBIG: "the file-size limit (ulimit -f) is too small for it; raise it",
    }
    text = e.strerror or os.strerror(e.errno)
    hint = hints.get(e.errno)
    return f"{text}; {hint}" if hint else text


def write_error(what: str, path: str | Path, e: BaseException, after: str = "") -> WriteError:
    """``WriteError('cannot write {what} {path}: {cause}{after}')``."""
    return WriteError(f"cannot write {what} {path}: {os_cause(e)}{after}")
