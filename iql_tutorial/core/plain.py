"""A plain, straightforward PyTorch IQL update: the reference for correctness and speed.

Written the way most single-file implementations are: one ``nn.Sequential`` per critic in a
Python list, ``torch.distributions.Normal`` for the log-likelihood, three Adam optimizers with
their default settings, three backward passes, and a Python loop for the Polyak update. It
imports nothing from the package, so the tests can check the package's update against it and
the benchmark can time the package beside it.

It follows the package's default ``update_order="joint"``: every loss uses the value network
before this step's update.

What is not the point of a comparison is shared with chapter 5's from-scratch learner: ``mlp``
(the networks) and ``copy_agent_weights`` (an ``IQLAgent``'s weights into such networks, so both
start from the same point).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """Linear layers with ReLUs between them: ``in_dim -> hidden... -> out_dim``."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


@torch.no_grad()
def copy_agent_weights(
    agent: Any,
    value: nn.Module,
    critics: Sequence[nn.Module],
    target_critics: Sequence[nn.Module],
    actor_mean: nn.Module,
    log_std: Tensor,
) -> None:
    """Copy an ``IQLAgent``'s weights into plain networks (``mlp``s): its value network, each critic
    replica and each target critic into its own MLP, the policy's mean network and log-std."""

    def copy_replicas(replicated: Any, mlps: Sequence[nn.Module]) -> None:
        layers = [*replicated.hidden, replicated.out]  # each holds every replica: weight [N, in, out]
        for i, q in enumerate(mlps):
            linears = [m for m in q.modules() if isinstance(m, nn.Linear)]
            for lin, rep in zip(linears, layers, strict=True):
                lin.weight.copy_(rep.weight[i].T)
                lin.bias.copy_(rep.bias[i, 0])

    copy_replicas(agent.critic, critics)
    copy_replicas(agent.target_critic, target_critics)
    value.load_state_dict(agent.value.net.state_dict())
    actor_mean.load_state_dict(agent.actor.net.state_dict())
    log_std.copy_(agent.actor.log_std)


class PlainIQL:
    """Scalar-reward IQL with N separate critics, for comparison with ``IQLAgent``."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: int = 256,
        num_critics: int = 2,
        lr: float = 3e-4,
        expectile: float = 0.7,
        beta: float = 3.0,
        gamma: float = 0.99,
        tau_target: float = 0.005,
        max_weight: float = 100.0,
        total_steps: int = 1_000_000,
        device: str | torch.device = "cpu",
    ) -> None:
        self.critics = [mlp(obs_dim + act_dim, (hidden, hidden), 1).to(device) for _ in range(num_critics)]
        self.target_critics = [copy.deepcopy(q) for q in self.critics]
        self.value = mlp(obs_dim, (hidden, hidden), 1).to(device)
        self.actor = mlp(obs_dim, (hidden, hidden), act_dim).to(device)
        self.log_std = nn.Parameter(torch.zeros(act_dim, device=device))
        self.critic_opt = torch.optim.Adam([p for q in self.critics for p in q.parameters()], lr=lr)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=lr)
        self.actor_opt = torch.optim.Adam([*self.actor.parameters(), self.log_std], lr=lr)
        self.lr, self.expectile, self.beta, self.gamma = lr, expectile, beta, gamma
        self.tau_target, self.max_weight, self.total_steps = tau_target, max_weight, total_steps
        self.step = 0

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        obs, next_obs = batch["obs"], batch["next_obs"]
        act = batch["actions"].clamp(-1 + 1e-5, 1 - 1e-5)
        rew, done = batch["rewards"].reshape(-1, 1), batch["terminals"].reshape(-1, 1)
        sa = torch.cat([obs, act], dim=1)
        for g in self.actor_opt.param_groups:
            g["lr"] = self.lr * 0.5 * (1 + math.cos(math.pi * min(self.step, self.total_steps) / self.total_steps))

        with torch.no_grad():
            target_q = torch.min(torch.stack([q(sa) for q in self.target_critics]), dim=0).values
            next_v = self.value(next_obs)

        v = self.value(obs)
        diff = target_q - v
        value_loss = (torch.abs(self.expectile - (diff < 0).float()) * diff**2).mean()

        target = rew + self.gamma * (1 - done) * next_v
        critic_loss = sum(((q(sa) - target) ** 2).mean() for q in self.critics)

        weights = torch.exp(self.beta * (target_q - v.detach())).clamp(max=self.max_weight).squeeze(1)
        dist = torch.distributions.Normal(torch.tanh(self.actor(obs)), self.log_std.clamp(-5, 2).exp())
        actor_loss = -(weights * dist.log_prob(act).sum(-1)).mean()

        self.value_opt.zero_grad()
        value_loss.backward()
        self.value_opt.step()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()

        with torch.no_grad():
            for q, qt in zip(self.critics, self.target_critics, strict=True):
                for p, pt in zip(q.parameters(), qt.parameters(), strict=True):
                    pt.mul_(1 - self.tau_target).add_(self.tau_target * p)
        self.step += 1
        return {
            "value_loss": value_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
        }

    def load_from_agent(self, agent: Any) -> None:
        """Copy the weights of an ``IQLAgent`` (2-layer MLPs) so both start from the same point."""
        copy_agent_weights(agent, self.value, self.critics, self.target_critics, self.actor, self.log_std)
