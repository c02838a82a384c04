"""The book's datasets on disk: writing checked episodes as a Minari dataset (through the compact
writer of :mod:`iql_tutorial.data.minari_writer`, which the importer of logged data shares), and
inspecting what is there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

# The writer itself is shared with the importer of logged data, so it lives in ``data``
from iql_tutorial.data.importer import dataset_lock, write_locked
from iql_tutorial.data.loader import datasets_path
from iql_tutorial.data.minari_writer import Episode, compact_hdf5, create_compact

__all__ = ["Episode", "compact_hdf5", "create_compact"]  # and this module's own functions


def dataset_dir(dataset_id: str) -> Path:
    """Folder of a dataset id (``ns/env/name-v0`` -> ``<root>/ns/env/name-v0``)."""
    return datasets_path() / dataset_id


def is_built(dataset_id: str) -> bool:
    d = dataset_dir(dataset_id)
    return (d / "data" / "main_data.hdf5").exists() and (d / "data" / "metadata.json").exists()


def broken(dataset_id: str) -> str | None:
    """Why the dataset folder of ``dataset_id`` cannot be read (None: it can, or there is no
    folder): its metadata.json missing or not JSON, its main_data.hdf5 missing, empty or cut short."""
    d = dataset_dir(dataset_id) / "data"
    if not d.parent.exists():
        return None
    meta, main = d / "metadata.json", d / "main_data.hdf5"
    if not meta.exists() and not main.exists():
        return "its data folder holds neither metadata.json nor main_data.hdf5" if d.exists() else None
    try:
        import json

        if not isinstance(json.loads(meta.read_text()), dict):
            return "metadata.json holds no settings"
    except FileNotFoundError:
        return "metadata.json is missing"
    except (OSError, ValueError) as e:
        return f"metadata.json cannot be read ({type(e).__name__})"
    if not main.exists():
        return "main_data.hdf5 is missing"
    try:
        with h5py.File(main, "r"):
            pass
    except Exception as e:  # cut short (HDF5 compares the file's end with the one it recorded), or not HDF5
        cause = "truncated" if "truncated" in str(e) else type(e).__name__
        return f"main_data.hdf5 cannot be opened ({cause}, {main.stat().st_size / 1e6:.1f} MB)"
    return None


def size_on_disk(dataset_id: str) -> int:
    """Bytes under the dataset's folder (0 if not built)."""
    d = dataset_dir(dataset_id)
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) if d.exists() else 0


def check_episode(ep: Episode, where: str) -> None:
    """Shapes and finiteness of one episode in Minari's layout; raises ``ValueError`` naming it."""
    n = len(ep["actions"])
    if len(ep["observations"]) != n + 1:
        raise ValueError(f"{where}: {len(ep['observations'])} observations for {n} actions (need one more).")
    for k in ("rewards", "terminations", "truncations"):
        if len(ep[k]) != n:
            raise ValueError(f"{where}: '{k}' has {len(ep[k])} entries for {n} actions.")
    for k in ("observations", "actions", "rewards"):
        if not np.all(np.isfinite(ep[k])):
            raise ValueError(f"{where}: NaN or inf in '{k}'.")
    if np.any(ep["terminations"][:-1] | ep["truncations"][:-1]):
        raise ValueError(f"{where}: an episode may only end at its last step.")
    if not (ep["terminations"][-1] or ep["truncations"][-1]):
        raise ValueError(f"{where}: the last step is neither a termination nor a truncation.")


def write_dataset(
    dataset_id: str,
    episodes: list[Episode],
    env_id: str,
    *,
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Box,
    ref_min_score: float,
    ref_max_score: float,
    description: str,
    algorithm_name: str,
    author: str = "iql_tutorial",
    force: bool = False,
) -> Path:
    """Write ``episodes`` as Minari dataset ``dataset_id``; returns its folder.

    Episodes are checked first (:func:`check_episode`). The dataset is written and compacted in
    a hidden temporary folder and moved into place at the end, as an import is
    (:func:`iql_tutorial.data.importer.write_locked`): a build killed part way leaves the old
    dataset (with ``force``) or none, never a half-written one.
    """
    for i, ep in enumerate(episodes):
        check_episode(ep, f"{dataset_id} episode {i}")
    d = dataset_dir(dataset_id)
    root = datasets_path()
    root.mkdir(parents=True, exist_ok=True)
    with dataset_lock(root, dataset_id):  # one writer per dataset, as for imports
        if d.exists() and not force:
            raise FileExistsError(f"Dataset {dataset_id} exists at {d}; pass force=True (--force) to rebuild it.")
        write_locked(
            root, dataset_id, d, force,
            lambda: create_compact(
                dataset_id, episodes, env_id, observation_space=observation_space, action_space=action_space,
                ref_min_score=float(ref_min_score), ref_max_score=float(ref_max_score), description=description,
                algorithm_name=algorithm_name, author=author,
            ),
        )  # fmt: skip
    return d


def read_episodes(dataset_id: str) -> list[Episode]:
    """All episodes of a local dataset as dicts (the inverse of :func:`write_dataset`)."""
    import minari

    ds = minari.load_dataset(dataset_id)
    return [
        {
            "observations": np.asarray(e.observations),
            "actions": np.asarray(e.actions),
            "rewards": np.asarray(e.rewards),
            "terminations": np.asarray(e.terminations, dtype=bool),
            "truncations": np.asarray(e.truncations, dtype=bool),
            "seed": ds.storage.get_episode_metadata([e.id]).__iter__().__next__().get("seed"),
        }
        for e in ds.iterate_episodes()
    ]


def read_field(dataset_id: str, field: str) -> list[np.ndarray]:
    """One field (``observations``, ``actions``, ``rewards``, ...) of every episode, in order,
    read straight from the HDF5 file (much faster than iterating Minari episodes)."""
    path = dataset_dir(dataset_id) / "data" / "main_data.hdf5"
    with h5py.File(path, "r") as f:
        names = sorted(f, key=lambda n: int(n.split("_")[-1]))
        return [f[n][field][()] for n in names]


def episode_returns(dataset_id: str) -> np.ndarray:
    """Undiscounted return of every episode (float64)."""
    return np.array([r.sum(dtype=np.float64) for r in read_field(dataset_id, "rewards")])


def metadata(dataset_id: str) -> dict[str, Any]:
    """The dataset's metadata.json."""
    import json

    return json.loads((dataset_dir(dataset_id) / "data" / "metadata.json").read_text())
