"""IQL from scratch: a small, fast PyTorch implementation of Implicit Q-Learning.

Kostrikov, Nair & Levine (2021), "Offline Reinforcement Learning with Implicit Q-Learning",
arXiv:2110.06169. One concept per module:

- ``config``: the hyperparameters and their checks
- ``networks``: value, critic ensemble (one batched matmul), Gaussian policy
- ``losses``: expectile loss, TD target, sign-aware replica min, AWR weights, Polyak
- ``agent``: the IQL update (Algorithm 1)
- ``whole_step``: the whole update compiled as one function (the fastest CPU path)
- ``fast``: several updates per call, and the CUDA-graph replay for GPUs
- ``data``: Minari datasets made here, loaded onto the device
- ``evaluation``: rollouts in vectorized environments and normalized scores
- ``train``: the training loop, checkpoints and the CLI
- ``bench``: the speed benchmark against a plain PyTorch update
"""

import os

# Sleeping (not spinning) OpenMP threads: effective only if this package is imported before
# torch; the Makefile exports it for every command. See the performance appendix.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from iql_tutorial.agent import IQLAgent  # noqa: E402
from iql_tutorial.config import IQLConfig  # noqa: E402

__all__ = ["IQLAgent", "IQLConfig"]
__version__ = "0.1.0"
