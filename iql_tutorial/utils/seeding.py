"""Seeding, and every global RNG state training touches (saved in checkpoints as data only)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state that training touches, as tensors and plain containers only, so a
    checkpoint holding it loads with ``torch.load(..., weights_only=True)`` (no pickled code)."""
    version, mt, pos = random.getstate()
    kind, keys, npos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [int(version), torch.tensor(mt, dtype=torch.int64), None if pos is None else float(pos)],
        "numpy": [
            str(kind),
            torch.from_numpy(np.asarray(keys).astype(np.int64)),
            int(npos),
            int(has_gauss),
            float(gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore ``rng_state()``."""
    version, mt, pos = state["python"]
    random.setstate((int(version), tuple(int(x) for x in mt.tolist()), pos))
    kind, keys, npos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(npos), int(has_gauss), float(gauss)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
