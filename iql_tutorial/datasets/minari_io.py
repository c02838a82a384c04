"""Writing episodes as a Minari dataset (no jax needed), compactly, and inspecting what is on disk.

Minari's HDF5 storage makes every per-episode array chunked and resizable, which costs about
15 kB per episode; datasets with many short episodes (a falling Hopper lasts ~20 steps) would
mostly be overhead. :func:`compact_hdf5` rewrites the file with contiguous arrays (about 4 kB
per episode); Minari reads it unchanged. The file uses HDF5's newer object layout (``libver="latest"``,
readable by HDF5 >= 1.10, i.e. any h5py of the last years), another ~20% smaller.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

Episode = dict[str, Any]  # observations [L+1, d], actions [L, a], rewards [L], terminations [L], truncations [L], seed


def minari_root() -> Path:
    """``$MINARI_DATASETS_PATH`` (the repository's ``data/`` unless set otherwise)."""
    import iql_tutorial.data  # noqa: F401  (sets the default)

    return Path(os.environ["MINARI_DATASETS_PATH"])


def dataset_dir(dataset_id: str) -> Path:
    """Folder of a dataset id (``ns/env/name-v0`` -> ``<root>/ns/env/name-v0``)."""
    return minari_root() / dataset_id


def is_built(dataset_id: str) -> bool:
    d = dataset_dir(dataset_id)
    return (d / "data" / "main_data.hdf5").exists() and (d / "data" / "metadata.json").exists()


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

    Episodes are checked first (:func:`check_episode`). The file is compacted afterwards.
    """
    for i, ep in enumerate(episodes):
        check_episode(ep, f"{dataset_id} episode {i}")
    d = dataset_dir(dataset_id)
    if d.exists():
        if not force:
            raise FileExistsError(f"Dataset {dataset_id} exists at {d}; pass force=True (--force) to rebuild it.")
        shutil.rmtree(d)
    return create_compact(
        dataset_id, episodes, env_id, observation_space=observation_space, action_space=action_space,
        ref_min_score=float(ref_min_score), ref_max_score=float(ref_max_score), description=description,
        algorithm_name=algorithm_name, author=author,
    )  # fmt: skip


def create_compact(
    dataset_id: str,
    episodes: list[Episode],
    env_id: str | None,
    *,
    observation_space: gym.spaces.Box,
    action_space: gym.spaces.Box,
    ref_min_score: float | None,
    ref_max_score: float | None,
    description: str,
    algorithm_name: str,
    author: str,
) -> Path:
    """Minari's ``create_dataset_from_buffers`` for checked ``episodes``, under
    ``$MINARI_DATASETS_PATH`` as it is now, then :func:`compact_hdf5`; returns the folder.

    The one place both the dataset builds (:func:`write_dataset`) and the importer of logged data
    (``iql_tutorial.data.importer``, which points the path at a temporary folder first) write
    with. Reference scores may be None (imported data without them).
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = [
        EpisodeBuffer(
            id=i,
            seed=ep.get("seed"),
            observations=np.asarray(ep["observations"], dtype=observation_space.dtype),
            actions=np.asarray(ep["actions"], dtype=action_space.dtype),
            rewards=np.asarray(ep["rewards"], dtype=np.float32),
            terminations=np.asarray(ep["terminations"], dtype=bool),
            truncations=np.asarray(ep["truncations"], dtype=bool),
        )
        for i, ep in enumerate(episodes)
    ]
    with warnings.catch_warnings():  # Minari asks for an e-mail, a permalink, an env: none to give
        warnings.filterwarnings("ignore", category=UserWarning, module=r"minari.*")
        ds = minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=env_id,
            eval_env=env_id,
            observation_space=observation_space,
            action_space=action_space,
            algorithm_name=algorithm_name,
            author=author,
            ref_min_score=ref_min_score,
            ref_max_score=ref_max_score,
            description=description,
            data_format="hdf5",
        )
        if ref_min_score is not None and "ref_min_score" not in ds.storage.metadata:
            ds.storage.update_metadata({"ref_min_score": ref_min_score, "ref_max_score": ref_max_score})
        del ds
    d = dataset_dir(dataset_id)
    compact_hdf5(d / "data" / "main_data.hdf5")
    _refresh_size(d)
    return d


def compact_hdf5(path: str | Path) -> None:
    """Rewrite an HDF5 file with contiguous datasets (same groups, arrays and attributes)."""
    path = Path(path)
    tmp = path.with_suffix(".compact.tmp")

    def copy(src: h5py.Group, dst: h5py.Group) -> None:
        dst.attrs.update(dict(src.attrs))
        for name, item in src.items():
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(name))
            else:
                ds = dst.create_dataset(name, data=item[()])
                ds.attrs.update(dict(item.attrs))

    with h5py.File(path, "r") as src, h5py.File(tmp, "w", libver="latest") as dst:
        copy(src, dst)
    os.replace(tmp, path)


def _refresh_size(d: Path) -> None:
    """Minari records ``dataset_size`` (MB) in metadata.json; update it after compaction."""
    import json

    meta_path = d / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    size = sum(f.stat().st_size for f in (d / "data").iterdir() if f.is_file())
    meta["dataset_size"] = round(size / 1e6, 1)
    meta_path.write_text(json.dumps(meta))


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
