"""Every dataset committed under data/: shapes, dtypes, finiteness, episode ends, metadata."""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import numpy as np
import pytest

import iql_tutorial.envs  # noqa: F401  (registers the mazes)
from iql_tutorial.data.loader import REPO_DATA_DIR
from iql_tutorial.datasets.behaviour import behaviour_dir, read_behaviour
from iql_tutorial.datasets.recipes import RECIPES

# the datasets the recipes say are committed, whether or not their files exist: a missing one fails
SHIPPED = [r for r in RECIPES.values() if r.shipped]


def _episodes(dataset_id: str) -> tuple[dict, list[dict]]:
    """Metadata and raw episodes, read with h5py straight from the committed file."""
    d = REPO_DATA_DIR / dataset_id / "data"
    meta = json.loads((d / "metadata.json").read_text())
    with h5py.File(d / "main_data.hdf5", "r") as f:
        eps = [
            {k: f[name][k][()] for k in f[name]} | {"name": name}
            for name in sorted(f, key=lambda n: int(n.split("_")[1]))
        ]
    return meta, eps


def test_the_book_datasets_are_committed():
    ids = {r.dataset_id for r in SHIPPED}
    for kind in ("random", "medium", "medium-replay", "expert", "medium-expert"):
        assert f"iqlbook/pendulum/{kind}-v0" in ids
    assert {"iqlbook/pointmaze/umaze-v0", "iqlbook/pointmaze/medium-v0"} <= ids
    missing = [
        r.dataset_id
        for r in SHIPPED
        if not all((REPO_DATA_DIR / r.dataset_id / "data" / f).is_file() for f in ("main_data.hdf5", "metadata.json"))
    ]
    assert not missing, f"shipped datasets missing under {REPO_DATA_DIR}: {missing}"


@pytest.mark.parametrize("recipe", SHIPPED, ids=[r.short for r in SHIPPED])
def test_dataset_integrity(recipe):
    meta, eps = _episodes(recipe.dataset_id)
    env = gym.make(recipe.env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    assert meta["total_episodes"] == len(eps) > 0
    assert meta["total_steps"] == sum(len(e["actions"]) for e in eps)
    for key in ("ref_min_score", "ref_max_score", "description", "algorithm_name", "author"):
        assert meta.get(key) not in (None, "", []), key
    assert meta["ref_max_score"] > meta["ref_min_score"]
    assert json.loads(meta["env_spec"])["id"] == recipe.env_id
    low, high = env.action_space.low, env.action_space.high
    max_steps = env.spec.max_episode_steps
    for e in eps:
        where = f"{recipe.dataset_id} {e['name']}"
        n = len(e["actions"])
        assert e["observations"].shape == (n + 1, obs_dim) and e["observations"].dtype == np.float32, where
        assert e["actions"].shape == (n, act_dim) and e["actions"].dtype == np.float32, where
        assert e["rewards"].shape == (n,) and e["terminations"].shape == (n,) and e["truncations"].shape == (n,)
        for k in ("observations", "actions", "rewards"):
            assert np.all(np.isfinite(e[k])), f"{where}: {k}"
        assert np.all((e["actions"] >= low - 1e-6) & (e["actions"] <= high + 1e-6)), where
        ends = e["terminations"] | e["truncations"]
        assert ends[-1] and not ends[:-1].any(), f"{where}: an episode ends at its last step only"
        assert not (e["terminations"][-1] and e["truncations"][-1]), where
        assert n <= max_steps, where
        if e["truncations"][-1] and recipe.kind != "medium-replay" and recipe.family == "sac":
            assert n == max_steps, f"{where}: truncated before the time limit"


@pytest.mark.parametrize("recipe", [r for r in SHIPPED if r.family == "maze"], ids=lambda r: r.short)
def test_maze_rewards_and_terminations_follow_the_goal(recipe):
    _, eps = _episodes(recipe.dataset_id)
    env = gym.make(recipe.env_id).unwrapped
    space = gym.make(recipe.env_id).observation_space
    for e in eps:
        assert space.contains(e["observations"][0])
        term = bool(e["terminations"][-1])
        assert e["rewards"].sum() == float(term) and e["rewards"][-1] == float(term)
        assert env.reached_goal(e["observations"][-1]) == term
        assert np.all(np.linalg.norm(e["observations"][:-1] - env.goal_pos, axis=1) > env.goal_radius)
        step = np.linalg.norm(np.diff(e["observations"], axis=0), axis=1)
        assert step.max() <= env.max_step * np.sqrt(2) + 1e-5  # consecutive positions: one bounded move
    # stitching: no episode that starts in the start cell reaches the goal... in the U-maze at all
    if recipe.env_key == "umaze":
        lay = env.layout
        assert not any(e["terminations"][-1] for e in eps if lay.cell_of(e["observations"][0]) == lay.start)


@pytest.mark.parametrize("env_key", sorted({r.env_key for r in SHIPPED if r.family == "sac"}))
def test_behaviour_policies_and_reference_scores(env_key):
    info = read_behaviour(env_key)
    d = behaviour_dir(env_key)
    for name in ("medium", "expert"):
        assert (d / f"{name}.pt").exists() and (d / f"{name}.json").exists()
    assert info["ref_max_score"] > info["ref_min_score"]
    assert 20 <= info["medium"]["normalized"] <= 60, "medium is about a third to a half of expert"
    assert info["training"]["cpu_seconds"] > 0
    rows = (d / "training_curve.csv").read_text().splitlines()
    assert rows[0] == "env_step,episode_return,episode_length" and len(rows) > 2
    for r in [r for r in SHIPPED if r.env_key == env_key]:
        meta = json.loads((REPO_DATA_DIR / r.dataset_id / "data" / "metadata.json").read_text())
        assert meta["ref_min_score"] == pytest.approx(info["ref_min_score"])
        assert meta["ref_max_score"] == pytest.approx(info["ref_max_score"])
        if r.kind == "medium-replay":
            assert meta["total_steps"] == info["medium_replay_steps"]


def test_committed_data_stays_small():
    total = sum(f.stat().st_size for f in REPO_DATA_DIR.rglob("*") if f.is_file() and "cache" not in f.parts
                and "snapshots" not in f.parts)  # fmt: skip
    # ~50 MB is the aim; today 57 MB, most of it the three MuJoCo medium-replay buffers (31 MB), and
    # 2.2 MB the eight policies the book shows acting (data/results/policies, issue 28)
    assert total < 58e6, f"data/ holds {total / 1e6:.1f} MB (committed data should stay under ~50 MB)"
