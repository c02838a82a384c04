"""The device, chosen once per run; gymnasium's continuous spaces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import gymnasium as gym


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU. Chosen once per run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device={device!r} is not supported: use auto, cpu, cuda or cuda:N.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device='{device}' was asked for but CUDA is not available here; use --device cpu or auto.")
    return torch.device(device)


def box(space: Any) -> gym.spaces.Box:
    """``space`` as a ``gymnasium.spaces.Box`` (continuous actions or flat observations), or a
    ``ValueError`` saying what it is instead."""
    import gymnasium as gym

    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"Expected a continuous Box space, got {space}.")
    return space
