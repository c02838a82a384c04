"""Seeded rollouts of behaviour policies into episodes in Minari's layout.

Every episode ``i`` resets its environment with ``seed + i``, and the policy's noise comes from
one generator seeded with ``seed``: the same seed gives the same data, bit for bit, on the same
machine and library versions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from iql_tutorial.datasets.minari_io import Episode
from iql_tutorial.utils import box

Policy = Callable[[np.ndarray], np.ndarray]  # observation -> action in the environment's units


def uniform_policy(space: gym.spaces.Box, seed: int) -> Policy:
    """Actions drawn uniformly from the (bounded) action space with a seeded generator."""
    rng = np.random.default_rng(seed)
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    return lambda obs: rng.uniform(low, high).astype(space.dtype)


def sac_policy(path: str | Path, space: gym.spaces.Box, seed: int, deterministic: bool = False) -> Policy:
    """A saved SAC actor (:func:`iql_tutorial.datasets.sac.load_policy`); sampled unless ``deterministic``."""
    from iql_tutorial.datasets.sac import load_policy, to_env_action

    torch.set_num_threads(1)
    actor, _ = load_policy(path)
    gen = torch.Generator().manual_seed(seed)
    return lambda obs: to_env_action(actor.act(obs, deterministic=deterministic, generator=gen), space).astype(
        space.dtype
    )


def rollout(env: gym.Env, policy: Policy, seed: int, options: dict | None = None) -> Episode:
    """One episode, its reset seeded with ``seed``."""
    obs, _ = env.reset(seed=seed, options=options)
    observations, actions, rewards, terms, truncs = [obs], [], [], [], []
    while True:
        a = policy(obs)
        obs, r, term, trunc, _ = env.step(a)
        observations.append(obs)
        actions.append(a)
        rewards.append(r)
        terms.append(term)
        truncs.append(trunc)
        if term or trunc:
            break
    return {
        "observations": np.asarray(observations, dtype=np.float32),
        "actions": np.asarray(actions, dtype=np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "terminations": np.asarray(terms, dtype=bool),
        "truncations": np.asarray(truncs, dtype=bool),
        "seed": int(seed),
    }


def collect(
    env_id: str,
    make_policy: Callable[[gym.spaces.Box], Policy],
    seed: int,
    n_episodes: int | None = None,
    n_steps: int | None = None,
    desc: str = "",
) -> list[Episode]:
    """Whole episodes until ``n_episodes`` are done or at least ``n_steps`` transitions are collected."""
    if (n_episodes is None) == (n_steps is None):
        raise ValueError("give exactly one of n_episodes and n_steps")
    env = gym.make(env_id)
    policy = make_policy(box(env.action_space))
    episodes: list[Episode] = []
    total = n_episodes if n_episodes is not None else n_steps
    bar = tqdm(total=total, desc=desc or f"collect {env_id}", unit="ep" if n_episodes else "step", mininterval=1.0)
    steps = 0
    while (n_episodes is not None and len(episodes) < n_episodes) or (n_steps is not None and steps < n_steps):
        ep = rollout(env, policy, seed + len(episodes))
        episodes.append(ep)
        steps += len(ep["actions"])
        bar.update(1 if n_episodes else len(ep["actions"]))
    bar.close()
    env.close()
    return episodes


def episode_return(ep: Episode) -> float:
    return float(np.sum(ep["rewards"], dtype=np.float64))


def mean_return(
    env_id: str, make_policy: Callable[[gym.spaces.Box], Policy], seed: int, episodes: int, desc: str = ""
) -> tuple[float, float]:
    """Mean and standard deviation of the undiscounted return over ``episodes`` seeded episodes."""
    rets = [episode_return(e) for e in collect(env_id, make_policy, seed, n_episodes=episodes, desc=desc)]
    return float(np.mean(rets)), float(np.std(rets))


def episodes_from_replay(replay: dict[str, np.ndarray], upto: int, space: gym.spaces.Box) -> list[Episode]:
    """Split a training run's first ``upto`` transitions into episodes.

    Actions are stored in [-1, 1] by SAC and mapped back to the environment's bounds. The episode
    running when the slice ends is cut there and marked as truncated.
    """
    from iql_tutorial.datasets.sac import to_env_action

    n = min(upto, len(replay["rewards"]))
    ends = np.flatnonzero(replay["terminals"][:n] | replay["truncations"][:n])
    if len(ends) == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    episodes, start = [], 0
    for end in ends:
        sl = slice(start, end + 1)
        obs = np.concatenate([replay["obs"][sl], replay["next_obs"][end : end + 1]])
        truncs = replay["truncations"][sl].copy()
        terms = replay["terminals"][sl].copy()
        if not (terms[-1] or truncs[-1]):
            truncs[-1] = True
        episodes.append(
            {
                "observations": obs.astype(np.float32),
                "actions": to_env_action(replay["actions"][sl], space).astype(np.float32),
                "rewards": replay["rewards"][sl].astype(np.float32),
                "terminations": terms.astype(bool),
                "truncations": truncs.astype(bool),
                "seed": None,
            }
        )
        start = int(end) + 1
    return episodes
