"""Policy evaluation: episodes in vectorized gymnasium environments, normalized scores.

The paper evaluates the deterministic policy (the Gaussian's mean) for 10 episodes every
5,000 steps on locomotion. Evaluation uses its own random generator, so it never changes
the training run's random stream.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from iql_tutorial.core.agent import IQLAgent
from iql_tutorial.data.loader import ActionScaler, OfflineDataset, flatten_obs


def rollout_returns(
    agent: IQLAgent,
    make_env: Callable[[], gym.Env],
    action_scaler: ActionScaler,
    num_episodes: int = 10,
    seed: int = 0,
    epsilon: float = 0.0,
) -> np.ndarray:
    """Undiscounted returns of ``num_episodes`` episodes, one per environment of a vector env,
    run in lockstep. ``epsilon = 0`` evaluates the mode (the paper's protocol)."""
    envs = gym.vector.SyncVectorEnv([make_env for _ in range(num_episodes)])
    try:
        obs_space = envs.single_observation_space
        obs, _ = envs.reset(seed=[seed + i for i in range(num_episodes)])
        returns = np.zeros(num_episodes)
        done = np.zeros(num_episodes, dtype=bool)
        gen = torch.Generator(device=agent.device)
        gen.manual_seed(seed)
        while not done.all():
            o = torch.as_tensor(flatten_obs(obs_space, obs), dtype=torch.float32, device=agent.device)
            a = agent.act(o, epsilon=epsilon, generator=gen).cpu().numpy()
            obs, r, term, trunc, _ = envs.step(action_scaler.to_env(a).astype(envs.single_action_space.dtype))
            returns += np.where(done, 0.0, r)
            done |= term | trunc
        return returns
    finally:
        envs.close()


def evaluate(
    agent: IQLAgent, dataset: OfflineDataset, num_episodes: int = 10, seed: int = 0, epsilon: float = 0.0
) -> dict[str, float]:
    """Mean return, its standard deviation and, where the dataset has reference scores, the
    normalized score 100 * (R - R_random) / (R_expert - R_random).

    A dataset that names no environment (``dataset.has_env`` is False: imported without ``--env``)
    has nothing to evaluate in: a ``ValueError`` says so. Its runs are judged by the offline
    diagnostics of :mod:`iql_tutorial.runs.diagnostics` instead."""
    if not dataset.has_env:
        dataset.make_env()  # raises the ValueError that says why and what to do
    returns = rollout_returns(agent, dataset.make_env, dataset.action_scaler, num_episodes, seed, epsilon)
    out = {"return_mean": float(returns.mean()), "return_std": float(returns.std())}
    if dataset.ref_min_score is not None and dataset.ref_max_score is not None:
        scores = dataset.normalized_score(returns)
        out["score_mean"] = float(scores.mean())
        out["score_std"] = float(scores.std())
    return out
