"""Tiny Minari datasets for tests, written into a temporary MINARI_DATASETS_PATH."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from minari import create_dataset_from_buffers
from minari.data_collector import EpisodeBuffer


def make_pendulum_dataset(
    dataset_id: str, episodes: int = 3, seed: int = 0, nan_episode: int | None = None, max_steps: int = 50
) -> None:
    """Random-action Pendulum-v1 episodes (truncated after ``max_steps``), with reference scores."""
    env = gym.make("Pendulum-v1", max_episode_steps=max_steps)
    rng = np.random.default_rng(seed)
    buffers = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done:
            act = rng.uniform(-2, 2, size=1).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            o.append(obs)
            a.append(act)
            r.append(rew)
            te.append(term)
            tr.append(trunc)
            done = term or trunc
        o = np.array(o)
        if nan_episode == i:
            o[3, 1] = np.nan
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=o,
                actions=np.array(a),
                rewards=np.array(r),
                terminations=np.array(te),
                truncations=np.array(tr),
                infos={},
            )
        )
    create_dataset_from_buffers(
        dataset_id,
        buffers,
        env=env,
        eval_env=env.spec,
        algorithm_name="random",
        author="tests",
        author_email="tests@example.invalid",
        code_permalink="tests/_tiny_data.py",
        description="tiny test data",
        ref_min_score=-400.0,
        ref_max_score=-50.0,
    )


def make_maze_dataset(dataset_id: str, episodes: int = 3, seed: int = 0, max_steps: int = 40) -> None:
    """Point-maze (U-maze) episodes truncated after ``max_steps``: the first one driven by the
    waypoint controller from a cell next to the goal, so it reaches it (reward 1, terminal);
    the others random actions from the start cell (rewards 0)."""
    import iql_tutorial.envs  # noqa: F401  (registers the mazes)
    from iql_tutorial.envs import ENV_IDS, WaypointController

    env = gym.make(ENV_IDS["umaze"], max_episode_steps=max_steps)
    layout = env.unwrapped.layout
    dist = layout.distances_to(layout.goal)
    near = next(tuple(int(x) for x in c) for c in np.argwhere(dist == 1))
    ctl = WaypointController(layout)
    ctl.set_target(layout.goal)
    rng = np.random.default_rng(seed)
    buffers = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i, options={"cell": near} if i == 0 else None)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done:
            act = ctl(obs.astype(np.float64)) if i == 0 else rng.uniform(-1, 1, size=2).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            o.append(obs)
            a.append(act)
            r.append(rew)
            te.append(term)
            tr.append(trunc)
            done = term or trunc
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.array(o),
                actions=np.array(a),
                rewards=np.array(r),
                terminations=np.array(te),
                truncations=np.array(tr),
                infos={},
            )
        )
    create_dataset_from_buffers(
        dataset_id,
        buffers,
        env=env,
        eval_env=env.spec,
        algorithm_name="random + controller",
        author="tests",
        author_email="tests@example.invalid",
        code_permalink="tests/_tiny_data.py",
        description="tiny maze test data",
        ref_min_score=0.0,
        ref_max_score=1.0,
    )
