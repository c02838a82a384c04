"""A replay buffer in preallocated device tensors: optional offline data first, new data appended.

Used by online fine-tuning (offline dataset + online transitions) and by the behaviour SAC that
makes this book's datasets (empty at first).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from iql_tutorial.data.transitions import Transitions


class ReplayBuffer:
    """Transitions in preallocated device tensors: the offline data first, online data appended.

    ``sample`` draws uniformly over everything stored so far, on the device.
    """

    def __init__(self, offline: Transitions, capacity: int) -> None:
        if capacity < len(offline):
            raise ValueError(f"capacity {capacity} is smaller than the offline data ({len(offline)} transitions).")
        dev = offline.device

        def alloc(t: Tensor) -> Tensor:
            out = torch.zeros((capacity, *t.shape[1:]), dtype=t.dtype, device=dev)
            out[: len(offline)] = t
            return out

        self.storage = Transitions(**{k: alloc(getattr(offline, k)) for k in Transitions.__dataclass_fields__})
        self.offline_size = self.size = len(offline)
        self.capacity = capacity

    def __len__(self) -> int:
        return self.size

    @property
    def device(self) -> torch.device:
        return self.storage.device

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminal: bool,
        timeout: bool,
        episode_id: int,
    ) -> None:
        if self.size >= self.capacity:
            raise RuntimeError(f"Replay buffer full ({self.capacity} transitions); give a larger capacity.")
        i, s = self.size, self.storage
        s.obs[i] = torch.as_tensor(obs, dtype=s.obs.dtype)
        s.actions[i] = torch.as_tensor(action, dtype=s.actions.dtype)
        s.rewards[i] = float(reward)
        s.next_obs[i] = torch.as_tensor(next_obs, dtype=s.next_obs.dtype)
        s.terminals[i] = float(terminal)
        s.timeouts[i] = float(timeout)
        s.episode_ids[i] = episode_id
        self.size += 1

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return self.storage.batch(idx)

    def online_part(self) -> dict[str, Tensor]:
        s, a, b = self.storage, self.offline_size, self.size
        return {k: getattr(s, k)[a:b].cpu() for k in Transitions.__dataclass_fields__}

    def restore_online_part(self, part: dict[str, Tensor]) -> None:
        n = len(part["obs"])
        for k, v in part.items():
            getattr(self.storage, k)[self.offline_size : self.offline_size + n] = v.to(self.device)
        self.size = self.offline_size + n

    @classmethod
    def empty(
        cls, capacity: int, obs_dim: int, act_dim: int, reward_dim: int = 1, device: str | torch.device = "cpu"
    ) -> ReplayBuffer:
        """A buffer with no offline part (an online learner's, e.g. the behaviour SAC's)."""

        def z(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        none = Transitions(z(0, obs_dim), z(0, act_dim), z(0, reward_dim), z(0, obs_dim), z(0), z(0),
                           z(0, dtype=torch.int64))  # fmt: skip
        return cls(none, capacity)

    def filled(self, upto: int | None = None) -> Transitions:
        """The first ``upto`` (default: all) stored transitions, as views."""
        n = self.size if upto is None else min(upto, self.size)
        s = self.storage
        return Transitions(**{k: getattr(s, k)[:n] for k in Transitions.__dataclass_fields__})
