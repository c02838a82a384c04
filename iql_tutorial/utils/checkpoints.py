"""Checkpoint files: written atomically (a failed write raises a one-line ``WriteError``), loaded as
data only (``weights_only=True``)."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from iql_tutorial.utils.files import atomic_write_bytes, first_line, write_error


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
        raise ValueError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {first_line(e)}). It is not a checkpoint of this "
            "package or it is damaged; delete it to start over, or point --out at another folder."
        ) from None
