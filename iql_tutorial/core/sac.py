"""The pieces of Soft Actor-Critic (Haarnoja et al., 2018) that two users share.

The behaviour SAC that makes this book's datasets (``datasets.sac``, online) and the naive
offline baseline (``runs.naive``: the same off-policy actor-critic trained on a fixed dataset,
the failure IQL is built to avoid) both use:

- a tanh-squashed Gaussian actor ``a = tanh(mu + sigma * eps)`` with the change-of-variables
  correction in its log-probability;
- twin critics held as one batched network: the package's ``ReplicatedCritic`` (weights
  ``[2, in, out]``, one ``baddbmm`` per layer);
- the losses: the soft TD target with the min over the twins, the critic's squared error,
  the actor's ``alpha log pi - min Q`` and the temperature's loss.

They live in ``core`` so that ``runs`` (the naive baseline) and ``datasets`` (the behaviour SAC)
import them from below: neither of those layers imports the other.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iql_tutorial.core.losses import polyak_update
from iql_tutorial.core.networks import ReplicatedCritic

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
LOG_2 = math.log(2.0)


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden)
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class SquashedGaussianActor(nn.Module):
    """pi(a|s): a Gaussian in pre-squash space, then ``tanh``; actions lie in (-1, 1)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, tuple(hidden)
        self.net = _mlp(obs_dim, self.hidden, 2 * act_dim)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-std of the pre-squash Gaussian, each ``[B, act_dim]``."""
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """A reparameterised action in (-1, 1) and its log-probability ``[B]``."""
        mu, log_std = self(obs)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        u = mu + log_std.exp() * eps
        return torch.tanh(u), squashed_log_prob(u, mu, log_std)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False, generator: torch.Generator | None = None) -> np.ndarray:
        """One action for one observation (numpy in, numpy out), in [-1, 1]."""
        o = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
        if deterministic:
            a = torch.tanh(self(o)[0])
        else:
            a = self.sample(o, generator)[0]
        return a[0].numpy()


def squashed_log_prob(u: Tensor, mu: Tensor, log_std: Tensor) -> Tensor:
    """log pi(tanh(u)) for u ~ N(mu, exp(log_std)^2), summed over action dimensions.

    ``log|d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``, the numerically
    stable form.
    """
    gauss = -0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    correction = 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))
    return (gauss - correction).sum(-1)


class SACCritic(ReplicatedCritic):
    """Q_1(s, a) and Q_2(s, a): the package's ``ReplicatedCritic`` (one batched matmul per layer,
    weights ``[2, in, out]``) with a scalar output, ``[2, B]``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (128, 128), n: int = 2) -> None:
        super().__init__(obs_dim, act_dim, tuple(hidden), num_critics=n, reward_dim=1)
        with torch.no_grad():  # SAC's usual initialisation: nn.Linear's default, per replica
            for layer in (*self.hidden, self.out):
                d_in = layer.weight.shape[1]
                for i in range(n):
                    nn.init.kaiming_uniform_(layer.weight[i].T, a=math.sqrt(5))
                bound = 1.0 / math.sqrt(d_in)
                layer.bias.uniform_(-bound, bound)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        return super().forward(obs, act).squeeze(-1)


def critic_target(
    reward: Tensor, terminal: Tensor, next_q: Tensor, next_logp: Tensor, alpha: Tensor, gamma: float
) -> Tensor:
    """Soft TD target ``r + gamma (1 - done) (min_i Q'_i(s', a') - alpha log pi(a'|s'))``.

    ``next_q`` is ``[2, B]`` from the target critics; truncation is not ``terminal``: bootstrap.
    """
    soft_v = next_q.min(dim=0).values - alpha * next_logp
    return reward + gamma * (1.0 - terminal) * soft_v


def critic_loss(q: Tensor, target: Tensor) -> Tensor:
    """Sum over the critics of the mean squared TD error; ``q`` is ``[2, B]``, ``target`` ``[B]``."""
    return ((q - target.unsqueeze(0)) ** 2).mean(dim=1).sum()


def actor_loss(q_pi: Tensor, logp: Tensor, alpha: Tensor) -> Tensor:
    """``E[alpha log pi(a|s) - min_i Q_i(s, a)]`` with ``a ~ pi`` reparameterised; ``q_pi`` is ``[2, B]``."""
    return (alpha * logp - q_pi.min(dim=0).values).mean()


def alpha_loss(log_alpha: Tensor, logp: Tensor, target_entropy: float) -> Tensor:
    """Temperature loss ``-log_alpha * (log pi + H_target)``: alpha grows when entropy is below target."""
    return -(log_alpha * (logp.detach() + target_entropy)).mean()


class SACLearner(Protocol):
    """What :func:`sac_update` updates: the actor, the twin critics and their targets, the
    temperature's log and its entropy target, and one optimiser each."""

    actor: SquashedGaussianActor
    critic: SACCritic
    critic_target: SACCritic
    log_alpha: Tensor
    target_entropy: float

    # read-only in the protocol, so that a learner whose optimisers are typed as Adam matches
    @property
    def actor_opt(self) -> torch.optim.Optimizer: ...
    @property
    def critic_opt(self) -> torch.optim.Optimizer: ...
    @property
    def alpha_opt(self) -> torch.optim.Optimizer: ...


def sac_update(
    sac: SACLearner,
    batch: dict[str, Tensor],
    gamma: float,
    tau: float,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """One SAC gradient step, in place: the critics on the soft TD target, then the actor, then
    the temperature, then Polyak averaging of the target critics (rate ``tau``). ``batch`` holds
    obs, actions, rewards (``[B]`` or ``[B, k]``, summed over ``k``), next_obs and terminals.
    Returns detached metrics (no host sync)."""
    obs, act, next_obs, term = (batch[k] for k in ("obs", "actions", "next_obs", "terminals"))
    rew = batch["rewards"].reshape(len(obs), -1).sum(-1)
    alpha = sac.log_alpha.exp().detach()
    with torch.no_grad():
        # the policy's own next action: an action the data may never hold
        next_a, next_logp = sac.actor.sample(next_obs, generator)
        y = critic_target(rew, term, sac.critic_target(next_obs, next_a), next_logp, alpha, gamma)
    q = sac.critic(obs, act)
    loss_q = critic_loss(q, y)
    sac.critic_opt.zero_grad(set_to_none=True)
    loss_q.backward()
    sac.critic_opt.step()

    a, logp = sac.actor.sample(obs, generator)
    sac.critic.requires_grad_(False)
    loss_pi = actor_loss(sac.critic(obs, a), logp, alpha)
    sac.critic.requires_grad_(True)
    sac.actor_opt.zero_grad(set_to_none=True)
    loss_pi.backward()
    sac.actor_opt.step()

    loss_alpha = alpha_loss(sac.log_alpha, logp, sac.target_entropy)
    sac.alpha_opt.zero_grad(set_to_none=True)
    loss_alpha.backward()
    sac.alpha_opt.step()
    with torch.no_grad():
        polyak_update(list(sac.critic_target.parameters()), list(sac.critic.parameters()), tau)
    return {
        "critic_loss": loss_q.detach(),
        "actor_loss": loss_pi.detach(),
        "alpha": alpha,
        "entropy": -logp.detach().mean(),
        "q_mean": q.detach().mean(),
    }
