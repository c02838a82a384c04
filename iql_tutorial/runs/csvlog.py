"""Metric logs (``train_log.csv``, ``eval_log.csv``, ``diag_log.csv``) that stay consistent across a
resume. Checkpoint files themselves are written and read by ``iql_tutorial.utils.checkpoints``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pandas as pd

from iql_tutorial.utils import atomic_write_text, write_error

__all__ = ["CsvLog"]


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
