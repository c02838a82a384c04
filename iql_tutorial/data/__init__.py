"""Offline data for training: transitions on the device, any Minari dataset loaded, your own arrays
imported (``importer``). Making this book's datasets lives in ``iql_tutorial.datasets``.

Importing this package points ``MINARI_DATASETS_PATH`` at the repository's ``data/`` folder
unless the variable is already set, so the project's own datasets are found with no setup.
"""

import os

from iql_tutorial.data.loader import (
    REPO_DATA_DIR,
    ActionScaler,
    OfflineDataset,
    check_continuous,
    datasets_path,
    episode_returns,
    list_local_ids,
    load_dataset,
    reward_normalization,
)
from iql_tutorial.data.transitions import Transitions

os.environ.setdefault("MINARI_DATASETS_PATH", str(REPO_DATA_DIR))


def __getattr__(name: str) -> object:
    """``ensure_dataset`` builds datasets: imported on first use only (it pulls in the
    dataset-making code, which training never needs)."""
    if name == "ensure_dataset":
        from iql_tutorial.datasets.recipes import ensure_dataset

        return ensure_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "REPO_DATA_DIR",
    "ActionScaler",
    "OfflineDataset",
    "Transitions",
    "check_continuous",
    "datasets_path",
    "ensure_dataset",
    "episode_returns",
    "list_local_ids",
    "load_dataset",
    "reward_normalization",
]
