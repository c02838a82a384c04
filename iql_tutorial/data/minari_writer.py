"""Writing episodes as a Minari dataset (no jax needed), compactly: the one writer of both the
importer of logged data (:mod:`iql_tutorial.data.importer`) and the book's dataset builds
(:mod:`iql_tutorial.datasets.minari_io`).

Minari's HDF5 storage makes every per-episode array chunked and resizable, which costs about
15 kB per episode; datasets with many short episodes (a falling Hopper lasts ~20 steps) would
mostly be overhead. :func:`compact_hdf5` rewrites the file with contiguous arrays (about 4 kB
per episode); Minari reads it unchanged. The file uses HDF5's newer object layout (``libver="latest"``,
readable by HDF5 >= 1.10, i.e. any h5py of the last years), another ~20% smaller.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np

from iql_tutorial.data.loader import datasets_path

Episode = dict[str, Any]  # observations [L+1, d], actions [L, a], rewards [L], terminations [L], truncations [L], seed


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

    The one place both the dataset builds (``datasets.minari_io.write_dataset``) and the importer of logged data
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
    d = datasets_path() / dataset_id
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
    meta_path = d / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    size = sum(f.stat().st_size for f in (d / "data").iterdir() if f.is_file())
    meta["dataset_size"] = round(size / 1e6, 1)
    meta_path.write_text(json.dumps(meta))
