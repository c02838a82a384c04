"""The three networks of IQL: a value V(s), N critic replicas Q_i(s, a), and a policy.

All are two-hidden-layer ReLU MLPs of width 256 with orthogonal initialisation (gain
sqrt(2) on hidden layers, 1 on the output), as in the paper's code. The critic replicas are
one batched computation: every layer holds the weights of all N replicas in one tensor of
shape [N, in, out] and runs as a single batched matmul (``torch.baddbmm``), so N critics
cost one kernel per layer instead of N.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _orthogonal_(weight: Tensor, gain: float) -> None:
    """Orthogonal init of a weight stored as [in, out] (or [N, in, out], per replica)."""
    if weight.dim() == 2:
        nn.init.orthogonal_(weight.data.T, gain=gain)
    else:
        for w in weight.data:
            nn.init.orthogonal_(w.T, gain=gain)


def mlp(in_dim: int, hidden_dims: tuple[int, ...], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """A ReLU MLP ``in_dim -> hidden_dims -> out_dim`` with orthogonal initialisation."""
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden_dims)
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dims[-1], out_dim))
    for i, layer in enumerate(m for m in layers if isinstance(m, nn.Linear)):
        is_last = i == len(hidden_dims)
        nn.init.orthogonal_(layer.weight, gain=1.0 if is_last else math.sqrt(2.0))
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class ReplicaLinear(nn.Module):
    """N independent linear layers evaluated as one batched matmul.

    Input [N, B, in] (or [B, in], shared by all replicas), output [N, B, out].
    """

    def __init__(self, num_replicas: int, in_dim: int, out_dim: int, gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_replicas, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(num_replicas, 1, out_dim))
        _orthogonal_(self.weight, gain)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # the same input for every replica: a stride-0 view, no copy
            x = x.unsqueeze(0).expand(self.weight.shape[0], -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)


class ReplicatedCritic(nn.Module):
    """N critics Q_i(s, a) with k outputs each (one per reward dimension).

    ``forward(obs [B, d_s], act [B, d_a]) -> [N, B, k]``.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_dims: tuple[int, ...], num_critics: int = 2, reward_dim: int = 1
    ) -> None:
        super().__init__()
        self.num_critics = num_critics
        dims = (obs_dim + act_dim, *hidden_dims)
        self.hidden = nn.ModuleList(
            ReplicaLinear(num_critics, d_in, d_out, gain=math.sqrt(2.0))
            for d_in, d_out in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = ReplicaLinear(num_critics, dims[-1], reward_dim, gain=1.0)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        h = torch.cat([obs, act], dim=-1)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.out(h)


class ValueNetwork(nn.Module):
    """V(s) with k outputs (one per reward dimension): ``[B, d_s] -> [B, k]``."""

    def __init__(self, obs_dim: int, hidden_dims: tuple[int, ...], reward_dim: int = 1) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden_dims, reward_dim)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)


class GaussianPolicy(nn.Module):
    """The paper's policy: a Gaussian whose mean is ``tanh(MLP(s))`` and whose log standard
    deviation is a learned, state-independent vector, clamped to [log_std_min, log_std_max].

    This is not a tanh-squashed distribution: only the mean is squashed, so the log-density
    of a dataset action is a plain Gaussian log-density (no change-of-variables term).
    Actions live in [-1, 1]; the data layer rescales environments with other bounds.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dims: tuple[int, ...],
        dropout: float = 0.0,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden_dims, act_dim, dropout=dropout)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def mean_and_log_std(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tanh(self.net(obs))
        log_std = self.log_std.clamp(self.log_std_min, self.log_std_max)
        return mean, log_std

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        """log pi(a | s) of given actions (what the policy loss, Eq. 7, needs): ``log_prob``."""
        return self.log_prob(obs, act)

    def log_prob(self, obs: Tensor, act: Tensor) -> Tensor:
        """log pi(a | s), summed over action dimensions: ``[B, d_a] -> [B]``.

        Written out instead of using ``torch.distributions``: the same numbers without
        building a distribution object on every step.
        """
        mean, log_std = self.mean_and_log_std(obs)
        z = (act - mean) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - LOG_SQRT_2PI).sum(-1)

    @torch.no_grad()
    def act(self, obs: Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Evaluation actions in [-1, 1].

        ``epsilon = 0`` gives the mode (the paper's evaluation). Otherwise epsilon-greedy as
        in the reference design: each row is a sample from the Gaussian with probability
        ``epsilon`` and the mode otherwise.
        """
        mean, log_std = self.mean_and_log_std(obs)
        if epsilon <= 0.0:
            return mean
        noise = torch.randn(mean.shape, device=mean.device, generator=generator)
        sample = (mean + noise * log_std.exp()).clamp(-1.0, 1.0)
        explore = torch.rand(mean.shape[:-1] + (1,), device=mean.device, generator=generator) < epsilon
        return torch.where(explore, sample, mean)
