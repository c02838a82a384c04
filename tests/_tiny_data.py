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
