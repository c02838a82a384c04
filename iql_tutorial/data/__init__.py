"""Offline data for training: transitions on the device, any Minari dataset loaded, your own arrays
imported (``importer``). Making this book's datasets lives in ``iql_tutorial.datasets``
(``iql_tutorial.datasets.recipes.ensure_dataset`` builds one on first use); nothing here imports it.

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


__all__ = [
    "REPO_DATA_DIR",
    "ActionScaler",
    "OfflineDataset",
    "Transitions",
    "check_continuous",
    "datasets_path",
    "episode_returns",
    "list_local_ids",
    "load_dataset",
    "reward_normalization",
]
