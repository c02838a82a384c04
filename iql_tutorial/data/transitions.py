"""Transitions held on the device, and batches sampled there.

The whole dataset is moved to the device once; a batch is a gather with indices drawn
by ``torch.randint`` on the same device, so sampling never touches the host.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor


@dataclass
class Transitions:
    """A flat table of T transitions (one row each).

    obs [T, d_s], actions [T, d_a] in [-1, 1], rewards [T, k], next_obs [T, d_s],
    terminals [T] (1.0: the episode ended in a terminal state, do not bootstrap),
    timeouts [T] (1.0: the episode was truncated here, e.g. by a time limit; bootstrap),
    episode_ids [T] (int64, which episode each row came from).
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminals: Tensor
    timeouts: Tensor
    episode_ids: Tensor

    def __post_init__(self) -> None:
        if self.rewards.dim() == 1:
            self.rewards = self.rewards.unsqueeze(-1)
        n = self.obs.shape[0]
        for f in fields(self):
            t = getattr(self, f.name)
            if t.shape[0] != n:
                raise ValueError(
                    f"Transitions.{f.name} has {t.shape[0]} rows but obs has {n}: every field needs one row per transition."
                )
        if self.next_obs.shape != self.obs.shape:
            raise ValueError(
                f"next_obs shape {tuple(self.next_obs.shape)} differs from obs shape {tuple(self.obs.shape)}."
            )

    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    @property
    def reward_dim(self) -> int:
        return self.rewards.shape[1]

    @property
    def device(self) -> torch.device:
        return self.obs.device

    @property
    def episode_ends(self) -> Tensor:
        """Rows where an episode stops, by termination or by truncation."""
        return (self.terminals > 0) | (self.timeouts > 0)

    def to(self, device: str | torch.device) -> Transitions:
        return Transitions(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """A uniform batch, drawn and gathered on the device."""
        idx = torch.randint(0, len(self), (batch_size,), device=self.device, generator=generator)
        return self.batch(idx)

    def batch(self, idx: Tensor) -> dict[str, Tensor]:
        return {
            "obs": self.obs[idx],
            "actions": self.actions[idx],
            "rewards": self.rewards[idx],
            "next_obs": self.next_obs[idx],
            "terminals": self.terminals[idx],
        }

    def check_finite(self, where: str = "dataset") -> None:
        """Raise ``ValueError`` naming the field, the first bad row and its episode."""
        for name in ("obs", "actions", "rewards", "next_obs"):
            t = getattr(self, name)
            bad = ~torch.isfinite(t.reshape(len(self), -1)).all(dim=1)
            if bool(bad.any()):
                row = int(bad.nonzero()[0, 0])
                ep = int(self.episode_ids[row])
                raise ValueError(
                    f"{where}: field '{name}' holds NaN or inf in {int(bad.sum())} transition(s); the first is "
                    f"row {row} (episode {ep}). Clean or rebuild the dataset before training."
                )

    @staticmethod
    def concat(parts: list[Transitions]) -> Transitions:
        """Join tables (e.g. medium + expert); episode ids are renumbered to stay unique."""
        out, offset = {}, 0
        ids = []
        for p in parts:
            ids.append(p.episode_ids + offset)
            offset += int(p.episode_ids.max()) + 1 if len(p) else 0
        for f in fields(Transitions):
            out[f.name] = torch.cat([getattr(p, f.name) for p in parts]) if f.name != "episode_ids" else torch.cat(ids)
        return Transitions(**out)

    @staticmethod
    def from_episodes(episodes: list[dict[str, np.ndarray]], dtype: torch.dtype = torch.float32) -> Transitions:
        """Build from episodes in Minari's layout: observations [L+1, d], actions [L, a],
        rewards [L] or [L, k], terminations [L], truncations [L]."""
        cols: dict[str, list[np.ndarray]] = {f.name: [] for f in fields(Transitions)}
        for i, ep in enumerate(episodes):
            o = np.asarray(ep["observations"])
            n = len(ep["actions"])
            if o.shape[0] != n + 1:
                raise ValueError(
                    f"episode {i}: {o.shape[0]} observations for {n} actions; Minari episodes hold one more "
                    "observation than actions (the final next observation)."
                )
            cols["obs"].append(o[:-1].reshape(n, -1))
            cols["next_obs"].append(o[1:].reshape(n, -1))
            cols["actions"].append(np.asarray(ep["actions"]).reshape(n, -1))
            r = np.asarray(ep["rewards"])
            cols["rewards"].append(r.reshape(n, -1))
            cols["terminals"].append(np.asarray(ep["terminations"]).reshape(n))
            cols["timeouts"].append(np.asarray(ep["truncations"]).reshape(n))
            cols["episode_ids"].append(np.full(n, i, dtype=np.int64))
        if not episodes:
            raise ValueError("No episodes given: the dataset is empty.")
        tensors = {}
        for name, parts in cols.items():
            arr = np.concatenate(parts)
            tensors[name] = torch.as_tensor(arr, dtype=torch.int64 if name == "episode_ids" else dtype)
        return Transitions(**tensors)


def synthetic_transitions(
    n: int,
    device: torch.device | str,
    seed: int = 0,
    obs_dim: int = 17,
    act_dim: int = 6,
    terminal_rate: float = 0.01,
) -> Transitions:
    """A random table of ``n`` transitions (HalfCheetah's shapes by default), for timing and tests."""
    g = torch.Generator().manual_seed(seed)
    t = Transitions(
        obs=torch.randn(n, obs_dim, generator=g),
        actions=torch.rand(n, act_dim, generator=g) * 2 - 1,
        rewards=torch.randn(n, generator=g),
        next_obs=torch.randn(n, obs_dim, generator=g),
        terminals=(torch.rand(n, generator=g) < terminal_rate).float(),
        timeouts=torch.zeros(n),
        episode_ids=torch.zeros(n, dtype=torch.int64),
    )
    return t.to(device)
