"""Checkpoints written atomically, and metric logs that stay consistent across a resume."""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_tutorial.utils import atomic_write_bytes, atomic_write_text


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename: a run killed while saving leaves
    the previous checkpoint intact."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint as data only (``weights_only=True``): tensors and plain containers.

    A file that carries anything else (a pickled class or callable, as a checkpoint written by
    untrusted code might) is refused before any of it runs.
    """
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
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {e}). It is not a checkpoint of this "
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
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

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
        atomic_write_text(self.path, buf.getvalue())
