"""Checkpoints written atomically, and metric logs that stay consistent across a resume."""

from __future__ import annotations

import csv
import errno
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_tutorial.utils import atomic_write_bytes, atomic_write_text


class WriteError(OSError):
    """A file of a run could not be written: one line naming the file and the cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


class _Recorder(io.RawIOBase):
    """A writable file that remembers the ``OSError`` its writes raised: torch.save reports a
    failed write as a ``RuntimeError`` from its C++ zip writer, without the cause."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename: a run killed while saving leaves
    the previous checkpoint intact. A failed write (disk full, file-size limit, permissions)
    raises a one-line ``WriteError`` naming the file and the cause."""
    recorder: list[_Recorder] = []

    def write(f: Any) -> None:
        recorder.append(_Recorder(f))
        torch.save(state, recorder[0])  # type: ignore[arg-type]  # a file object all the same

    try:
        atomic_write_bytes(path, write)
    except (OSError, RuntimeError) as e:
        cause = recorder[0].error if recorder and recorder[0].error is not None else e
        kept = " (the previous checkpoint is intact)" if Path(path).exists() else ""
        raise write_error("checkpoint", path, cause, kept) from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint as data only (``weights_only=True``): tensors and plain containers.

    A file that carries anything else (a pickled class or callable, as a checkpoint written by
    untrusted code might) is refused before any of it runs.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Checkpoint {path} is not a file torch.save writes (not a zip archive: damaged, cut short or "
            "another kind of file), so it was not loaded; delete it to start over, or point --out at another folder."
        )
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        del e
        raise ValueError(
            f"Checkpoint {path} holds Python objects other than tensors and plain containers, so it was not "
            "loaded and nothing in it ran. Checkpoints of this package hold data only: use one written "
            "by this package, or delete it and start over."
        ) from None
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {first}). It is not a checkpoint of this "
            "package or it is damaged; delete it to start over, or point --out at another folder."
        ) from None


class CsvLog:
    """Append-only CSV with a fixed header, readable by ``pandas.read_csv`` at any time.

    ``truncate_after(step)`` drops rows past a checkpoint's step (and any half-written last
    line), so a resumed run neither duplicates nor loses rows.
    """

    def __init__(self, path: str | Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = ["step", *[c for c in columns if c != "step"]]

    def append(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        try:
            with open(self.path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
        except OSError as e:
            raise write_error("log", self.path, e) from None

    def frame(self) -> pd.DataFrame:
        """The log as a DataFrame (empty, with the columns, if nothing was written yet)."""
        return pd.read_csv(self.path) if self.path.exists() else pd.DataFrame(columns=self.columns)

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [r for r in rows if None not in r.values() and r.get("step", "").isdigit()]

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [r for r in self.read() if int(r["step"]) <= step]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(keep)
        try:
            atomic_write_text(self.path, buf.getvalue())
        except OSError as e:
            raise write_error("log", self.path, e) from None
