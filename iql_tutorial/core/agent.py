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

How the joint update runs is the agent's ``mode`` (see :mod:`iql_tutorial.speed.runner`):
``"eager"`` calls the one step function of :mod:`iql_tutorial.core.step`, ``"compile"`` calls it
through ``torch.compile``, ``"cuda-graph"`` replays it captured as a CUDA graph (``train_steps``).

The hot path makes no host syncs: losses come back as tensors, and the trainer converts
them to numbers only at logging intervals.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iql_tutorial.core import losses
from iql_tutorial.core.config import IQLConfig
from iql_tutorial.core.networks import EnsembleCritic, GaussianPolicy, ValueNetwork
from iql_tutorial.core.step import ACTION_CLIP, IQLStep, cosine_lr, cosine_lr_tensor, resolve_mode

Batch = dict[str, Tensor]
__all__ = ["ACTION_CLIP", "IQLAgent", "cosine_lr", "cosine_lr_tensor"]


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this PyTorch has it for the device; foreach otherwise.
    The joint update writes Adam out on these optimizers' own state tensors (``core.step``); the
    sequential one calls their ``step``."""
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


class IQLAgent(nn.Module):
    """Value, critic ensemble, target critics and policy, with one Adam each.

    Args:
        obs_dim: size of the (flat) observation.
        act_dim: size of the continuous action; actions are in [-1, 1].
        config: the hyperparameters (``IQLConfig``).
        device: where the networks live; the batches passed to ``update`` must be there too.
        mode: how the joint update runs: ``"eager"`` (default), ``"compile"`` (``torch.compile``
            of the same step: same numbers up to float rounding, the first update pays the
            compilation, tens of seconds on a CPU), ``"cuda-graph"`` (CUDA only, through
            ``train_steps``), or ``"auto"`` (the fastest this machine supports; see
            ``iql_tutorial.core.step.resolve_mode``).
    """

    #: What runs the joint update in the agent's mode: ``iql_tutorial.speed.runner.StepRunner``,
    #: plugged in by the package's ``__init__``. The speed layer wraps ``core.step``, so core
    #: never imports it.
    runner_class: ClassVar[Callable[..., Any] | None] = None

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: IQLConfig | None = None,
        device: str | torch.device = "cpu",
        mode: str = "eager",
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
        self.reward_weights: Tensor | None
        self.register_buffer("reward_weights", torch.tensor(weights) if weights is not None else None)
        self.to(self.device)
        self.actor_opt = _adam(list(self.actor.parameters()), config.actor_lr)
        self.critic_opt = _adam(list(self.critic.parameters()), config.critic_lr)
        self.value_opt = _adam(list(self.value.parameters()), config.value_lr)
        self.num_updates = 0
        self.mode, self.mode_note = resolve_mode(mode, self.device, config.update_order)
        self.step = IQLStep(self) if config.update_order == "joint" else None
        self._runners: dict[str, Any] = {}  # "batch": for update(batch); "data": the last dataset's

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

    # ------------------------------------------------------------------ update
    def joint_losses(
        self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor
    ) -> tuple[Tensor, dict[str, Tensor], tuple[Tensor, Tensor]]:
        """The three losses of Algorithm 1 from one forward pass (``update_order="joint"``).

        Returns (value loss + critic loss + actor loss, detached metrics, (per-sample critic
        loss, per-sample value loss)). The losses touch disjoint parameters, so the gradient of
        the sum gives each network exactly the gradient of its own loss. ``core.step``
        differentiates this function.
        """
        cfg = self.config
        target_q = self.target_q_min(obs, act)  # computed once, used by the value and the actor
        value = self.value(obs)
        with torch.no_grad():
            next_v = self.value(next_obs)
        v_per_sample = losses.value_loss_per_sample(
            target_q, value, cfg.expectile, self.reward_weights, cfg.sign_aware_expectile
        )
        v_loss = v_per_sample.mean()  # Eq. (5)
        y = losses.td_target(rew, next_v, term, cfg.gamma)
        q = self.critic(obs, act)
        per_sample = losses.critic_loss_per_sample(q, y)
        q_loss = per_sample.mean()  # Eq. (6)
        weights = self.policy_weights(target_q, value.detach())
        a_loss = losses.awr_loss(weights, self.actor.log_prob(obs, act))  # Eq. (7)
        metrics = _metrics(v_loss, q_loss, a_loss, value, q, weights)
        return v_loss + q_loss + a_loss, metrics, (per_sample.detach(), v_per_sample.detach())

    def _sequential_update(
        self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor
    ) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor]]:
        """The official JAX code's order: V first, then the actor and the critics with the new V.
        Eager only, with ``torch.optim``'s own Adam steps: the teaching alternative."""
        cfg = self.config
        self._set_actor_lr()
        target_q = self.target_q_min(obs, act)
        value = self.value(obs)
        v_per_sample = losses.value_loss_per_sample(
            target_q, value, cfg.expectile, self.reward_weights, cfg.sign_aware_expectile
        )
        v_loss = v_per_sample.mean()
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
        self.num_updates += 1
        if self.num_updates % cfg.target_update_period == 0:
            losses.polyak_update(list(self.target_critic.parameters()), list(self.critic.parameters()), cfg.tau_target)
        return _metrics(v_loss, q_loss, a_loss, value, q, weights), (per_sample.detach(), v_per_sample.detach())

    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One IQL step on a batch with keys obs [B, d_s], actions [B, d_a], rewards [B, k],
        next_obs [B, d_s], terminals [B]. Returns detached metric tensors (no host sync)."""
        if self.step is None:  # update_order="sequential": the eager teaching alternative
            cfg = self.config
            act = batch["actions"].clamp(-ACTION_CLIP, ACTION_CLIP) if cfg.clip_actions else batch["actions"]
            out, per_sample = self._sequential_update(batch["obs"], act, batch["rewards"], batch["next_obs"],
                                                      batch["terminals"])  # fmt: skip
            if cfg.compute_priority:
                out["priority"] = losses.priority(per_sample[0], per_sample[1], cfg.priority)
            return out
        return self.runner().update(batch)

    def runner(self, data: Any = None, generator: torch.Generator | None = None) -> Any:
        """The ``StepRunner`` of this agent's mode for ``data`` (None: for given batches).

        The runner of the last dataset asked for is kept (a CUDA graph is captured once while
        training goes on on the same data), and only that one: a dataset the agent has moved
        on from is not kept alive by it."""
        if IQLAgent.runner_class is None:
            raise RuntimeError("IQLAgent.runner_class is not set: import iql_tutorial (its __init__ sets it).")
        slot = "batch" if data is None else "data"
        r = self._runners.get(slot)
        if r is None or r.data is not data or r.generator is not generator:
            self._runners.pop(slot, None)  # the old runner (and its graph) goes before the new one is built
            r = self._runners[slot] = IQLAgent.runner_class(self, data, generator)
        return r

    def train_steps(self, data: Any, num_steps: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``num_steps`` updates on batches sampled on the device from ``data`` (a
        ``Transitions``); returns the metrics of the last one. No host sync inside."""
        if self.step is None:
            out: dict[str, Tensor] = {}
            for _ in range(num_steps):
                out = self.update(data.sample(self.config.batch_size, generator))
            return out
        return self.runner(data, generator).run(num_steps)

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
        stored in their plain form (a float learning rate, not capturable), so a checkpoint of any
        mode loads into any other."""

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
