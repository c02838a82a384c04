"""The IQL learner: networks, optimizers and the update of Algorithm 1.

One ``update`` call does one gradient step of each of the three learners (Kostrikov et
al. 2021, Algorithm 1):

1. value:  V <- argmin E[L_2^tau(min_i Q_target_i(s, a) - V(s))]          (Eq. 5)
2. critic: Q_i <- argmin E[(r + gamma (1 - d) V(s') - Q_i(s, a))^2]       (Eq. 6)
3. actor:  pi <- argmax E[min(exp(beta (min_i Q_target_i(s, a) - V(s))), 100) log pi(a|s)] (Eq. 7)
4. target: Q_target <- (1 - tau_target) Q_target + tau_target Q, every ``target_update_period``.

Update order (``IQLConfig.update_order``):
- ``"joint"`` (default, the reference IqlAlgorithm design): all three losses come from one
  forward pass on the same parameters, so the critic target and the advantage use V
  *before* this step's value update. The three losses touch disjoint parameters, so one
  backward pass of their sum gives exactly the gradients of three separate backward passes.
- ``"sequential"`` (the official JAX code): update V first, then use the *updated* V for the
  advantage and the critic target.

The hot path makes no host syncs: losses come back as tensors, and the trainer converts
them to numbers only at logging intervals.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor, nn

from iql_tutorial import losses
from iql_tutorial.config import IQLConfig
from iql_tutorial.networks import EnsembleCritic, GaussianPolicy, ValueNetwork

Batch = dict[str, Tensor]
ACTION_CLIP = 1.0 - 1e-5


def _adam(params: list[nn.Parameter], lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where this PyTorch has it for the device (one kernel for
    all parameters instead of a loop over them); foreach otherwise. Same numbers as plain Adam
    up to float rounding."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _metrics(
    v_loss: Tensor, q_loss: Tensor, a_loss: Tensor, value: Tensor, q: Tensor, weights: Tensor
) -> dict[str, Tensor]:
    """What the trainer logs, as detached tensors (read on the host only at logging intervals)."""
    return {
        "value_loss": v_loss.detach(),
        "critic_loss": q_loss.detach(),
        "actor_loss": a_loss.detach(),
        "v_mean": value.detach().mean(),
        "q_mean": q.detach().mean(),
        "weight_mean": weights.detach().mean(),
    }


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """The paper's actor schedule: base_lr * (1 + cos(pi * t / T)) / 2, constant 0 after T."""
    t = min(step, total_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * t / total_steps))


def cosine_lr_tensor(base_lr: float, step: Tensor, total_steps: int) -> Tensor:
    """``cosine_lr`` computed on the device from a step-counter tensor (compiled and graph paths)."""
    t = torch.clamp(step, max=total_steps) / total_steps
    return base_lr * 0.5 * (1.0 + torch.cos(math.pi * t))


class IQLAgent(nn.Module):
    """Value, critic ensemble, target critics and policy, with one Adam each.

    Args:
        obs_dim: size of the (flat) observation.
        act_dim: size of the continuous action; actions are in [-1, 1].
        config: the hyperparameters (``IQLConfig``).
        device: where the networks live; the batches passed to ``update`` must be there too.
        compile: run the joint-order loss computation (forward and backward) through
            ``torch.compile``. Same numbers as eager up to float rounding; the first update
            pays the compilation (tens of seconds on a CPU).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: IQLConfig | None = None,
        device: str | torch.device = "cpu",
        compile: bool = False,
    ):
        super().__init__()
        self.config = config = config or IQLConfig()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        if self.obs_dim < 1 or self.act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be positive, got {obs_dim} and {act_dim}.")
        self.device = torch.device(device)
        k = config.reward_dim
        self.actor = GaussianPolicy(
            obs_dim, act_dim, config.hidden_dims, config.actor_dropout, config.log_std_min, config.log_std_max
        )
        self.critic = EnsembleCritic(obs_dim, act_dim, config.hidden_dims, config.num_critics, k)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = ValueNetwork(obs_dim, config.hidden_dims, k)
        weights = config.reward_weights
        self.register_buffer("reward_weights", torch.tensor(weights) if weights is not None else None)
        self.to(self.device)
        self.actor_opt = _adam(list(self.actor.parameters()), config.actor_lr, self.device)
        self.critic_opt = _adam(list(self.critic.parameters()), config.critic_lr, self.device)
        self.value_opt = _adam(list(self.value.parameters()), config.value_lr, self.device)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.target_critic.parameters())
        self.num_updates = 0
        # torch.compile fuses the many small elementwise kernels of the forward and backward
        # passes; the graph has static shapes and does not recompile (the learning rate is
        # set outside it).
        self._joint_losses = (
            torch.compile(self.joint_losses, fullgraph=True, dynamic=False) if compile else self.joint_losses
        )

    # ------------------------------------------------------------------ pieces
    def target_q_min(self, obs: Tensor, act: Tensor) -> Tensor:
        """min_i Q_target_i(s, a), sign-aware per reward dimension: [B, k], no gradient."""
        with torch.no_grad():
            return losses.replica_min(self.target_critic(obs, act), self.reward_weights)

    def policy_weights(self, target_q: Tensor, value: Tensor) -> Tensor:
        """AWR weights (Eq. 7), or all ones for behaviour cloning: [B]."""
        if self.config.policy == "bc":
            return torch.ones(target_q.shape[0], device=target_q.device, dtype=target_q.dtype)
        adv = losses.advantage(target_q, value, self.reward_weights)
        return losses.awr_weights(adv, self.config.beta, self.config.max_weight)

    def _set_actor_lr(self) -> None:
        if self.config.cosine_actor_lr:
            lr = cosine_lr(self.config.actor_lr, self.num_updates, self.config.total_steps)
            for group in self.actor_opt.param_groups:
                group["lr"] = lr

    def _maybe_update_target(self) -> None:
        self.num_updates += 1
        if self.num_updates % self.config.target_update_period == 0:
            losses.polyak_update(self._target_params, self._critic_params, self.config.tau_target)

    # ------------------------------------------------------------------ update
    def joint_losses(
        self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """The three losses of Algorithm 1 from one forward pass (``update_order="joint"``).

        Returns (value loss + critic loss + actor loss, detached metrics, per-sample critic
        loss). The losses touch disjoint parameters, so one backward pass of the sum gives each
        network exactly the gradient of its own loss. This function is what ``compile=True``
        hands to ``torch.compile`` and what the CUDA-graph path captures.
        """
        cfg = self.config
        target_q = self.target_q_min(obs, act)  # computed once, used by the value and the actor
        value = self.value(obs)
        with torch.no_grad():
            next_v = self.value(next_obs)
        v_loss = losses.value_loss(target_q, value, cfg.expectile, self.reward_weights)  # Eq. (5)
        y = losses.td_target(rew, next_v, term, cfg.gamma)
        q = self.critic(obs, act)
        per_sample = losses.critic_loss_per_sample(q, y)
        q_loss = per_sample.mean()  # Eq. (6)
        weights = self.policy_weights(target_q, value.detach())
        a_loss = losses.awr_loss(weights, self.actor.log_prob(obs, act))  # Eq. (7)
        metrics = _metrics(v_loss, q_loss, a_loss, value, q, weights)
        return v_loss + q_loss + a_loss, metrics, per_sample.detach()

    def _sequential_update(
        self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor
    ) -> tuple[dict[str, Tensor], Tensor]:
        """The official JAX code's order: V first, then the actor and the critics with the new V."""
        cfg = self.config
        target_q = self.target_q_min(obs, act)
        value = self.value(obs)
        v_loss = losses.value_loss(target_q, value, cfg.expectile, self.reward_weights)
        self.value_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.value_opt.step()
        with torch.no_grad():
            new_value = self.value(obs)
            next_v = self.value(next_obs)
        weights = self.policy_weights(target_q, new_value)
        a_loss = losses.awr_loss(weights, self.actor.log_prob(obs, act))
        self.actor_opt.zero_grad(set_to_none=True)
        a_loss.backward()
        self.actor_opt.step()
        y = losses.td_target(rew, next_v, term, cfg.gamma)
        q = self.critic(obs, act)
        per_sample = losses.critic_loss_per_sample(q, y)
        q_loss = per_sample.mean()
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.critic_opt.step()
        return _metrics(v_loss, q_loss, a_loss, value, q, weights), per_sample.detach()

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One IQL step on a batch with keys obs [B, d_s], actions [B, d_a], rewards [B, k],
        next_obs [B, d_s], terminals [B]. Returns detached metric tensors (no host sync)."""
        cfg = self.config
        obs, next_obs, rew, term = batch["obs"], batch["next_obs"], batch["rewards"], batch["terminals"]
        act = batch["actions"].clamp(-ACTION_CLIP, ACTION_CLIP) if cfg.clip_actions else batch["actions"]
        self._set_actor_lr()
        if cfg.update_order == "joint":
            total, out, per_sample = self._joint_losses(obs, act, rew, next_obs, term)
            for opt in (self.value_opt, self.critic_opt, self.actor_opt):
                opt.zero_grad(set_to_none=True)
            total.backward()
            self.value_opt.step()
            self.critic_opt.step()
            self.actor_opt.step()
        else:
            out, per_sample = self._sequential_update(obs, act, rew, next_obs, term)
        self._maybe_update_target()
        if cfg.compute_priority:
            out["priority"] = per_sample.sqrt()
        return out

    def train_steps(self, data: Any, num_steps: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``num_steps`` updates on batches sampled on the device from ``data`` (a
        ``Transitions``); returns the metrics of the last one. No host sync inside."""
        out: dict[str, Tensor] = {}
        for _ in range(num_steps):
            out = self.update(data.sample(self.config.batch_size, generator))
        return out

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Actions in [-1, 1] for a batch of observations: the mode, or epsilon-greedy."""
        was_training = self.actor.training
        self.actor.eval()
        try:
            return self.actor.act(obs, epsilon, generator)
        finally:
            self.actor.train(was_training)

    # ------------------------------------------------------------------ state
    def full_state(self) -> dict[str, Any]:
        """Networks, targets, optimizers and the update counter (the LR schedule is a
        function of it): everything needed to continue training exactly. Optimizer settings are
        stored in their plain form (a float learning rate, not capturable), so a checkpoint of the
        CUDA-graph path loads into any path."""

        def portable(opt: torch.optim.Optimizer) -> dict[str, Any]:
            state = opt.state_dict()
            for group in state["param_groups"]:
                group["lr"] = float(group["lr"])
                group["capturable"] = False
            return state

        return {
            "networks": self.state_dict(),
            "actor_opt": portable(self.actor_opt),
            "critic_opt": portable(self.critic_opt),
            "value_opt": portable(self.value_opt),
            "num_updates": self.num_updates,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "config": self.config.to_dict(),
        }

    def load_full_state(self, state: dict[str, Any]) -> None:
        """Restore ``full_state()``; a shape mismatch raises a ``ValueError`` saying which."""
        dims = (state.get("obs_dim"), state.get("act_dim"))
        if dims != (self.obs_dim, self.act_dim):
            raise ValueError(
                f"Checkpoint was trained with obs_dim={dims[0]}, act_dim={dims[1]}, but this agent has "
                f"obs_dim={self.obs_dim}, act_dim={self.act_dim}: the checkpoint belongs to another "
                "environment or dataset. Use a checkpoint of the same dataset, or a new output directory."
            )
        self.load_state_dict(state["networks"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.value_opt.load_state_dict(state["value_opt"])
        self.num_updates = int(state["num_updates"])
