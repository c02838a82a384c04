"""The IQL learner: the networks, their optimizers, and how its updates run.

The update itself, in the paper's order, is :func:`iql_tutorial.core.update.iql_update`
(Kostrikov et al. 2021, Algorithm 1):

1. value:  V <- argmin E[L_2^tau(min_i Q_target_i(s, a) - V(s))]          (Eq. 5)
2. critic: Q_i <- argmin E[(r + gamma (1 - d) V(s') - Q_i(s, a))^2]       (Eq. 6)
3. actor:  pi <- argmax E[min(exp(beta (min_i Q_target_i(s, a) - V(s))), 100) log pi(a|s)] (Eq. 7)
4. target: Q_target <- (1 - tau_target) Q_target + tau_target Q, every ``target_update_period``.

Update order (``IQLConfig.update_order``):
- ``"joint"`` (default, the reference IqlAlgorithm design): all three losses come from one
  forward pass on the same parameters, so the critic target and the advantage use V
  *before* this update's value step.
- ``"sequential"`` (the official JAX code): update V first, then use the *updated* V for the
  advantage and the critic target (:func:`iql_tutorial.core.update.sequential_update`).

The agent's ``mode`` says how the joint update runs (:class:`iql_tutorial.core.runner.UpdateRunner`):
``"eager"`` calls ``iql_update``, ``"compile"`` calls it through ``torch.compile``, ``"cuda-graph"``
replays it captured as a CUDA graph (``run_updates``). No host sync on the way: the losses come
back as tensors, and the trainer reads them only at logging intervals.

The road from ``IQLAgent.update`` to the algorithm: ``update`` -> ``UpdateRunner.update``
(``core/runner.py``) -> ``iql_update`` (``core/update.py``); ``run_updates`` goes the same way
through ``UpdateRunner.run``. The sequential order calls ``sequential_update`` directly.

Learning rates: the config's (``value_lr``, ``critic_lr``, ``actor_lr`` and the actor's cosine
schedule) in both orders. ``set_lr`` changes them; the optimizers' ``param_groups`` show the rate
the last update used, and a rate written there directly is refused with a one-line error (the
joint update would not read it).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from iql_tutorial.core import losses
from iql_tutorial.core.config import IQLConfig
from iql_tutorial.core.networks import GaussianPolicy, ReplicatedCritic, ValueNetwork
from iql_tutorial.core.runner import MODES, UpdateFn, UpdateRunner, have_cpp_compiler, resolve_mode
from iql_tutorial.core.update import ACTION_CLIP, Networks, actor_lr_at, policy_weights, sequential_update

Batch = dict[str, Tensor]
__all__ = ["ACTION_CLIP", "MODES", "IQLAgent", "have_cpp_compiler", "resolve_mode"]
#: what ``full_state`` writes and ``load_full_state`` needs
STATE_KEYS = ("networks", "actor_opt", "critic_opt", "value_opt", "num_updates", "obs_dim", "act_dim")


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this PyTorch has it for the device; foreach otherwise.
    The joint update steps Adam on these optimizers' own state tensors (``core.adam.adam_``);
    the sequential one calls their ``step``."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


class IQLAgent(nn.Module):
    """Value, critic replicas, target critics and policy, with one Adam each.

    Args:
        obs_dim: size of the (flat) observation.
        act_dim: size of the continuous action; actions are in [-1, 1].
        config: the hyperparameters (``IQLConfig``).
        device: where the networks live; the batches passed to ``update`` must be there too.
        mode: how the joint update runs: ``"eager"`` (default), ``"compile"`` (``torch.compile``
            of the same step: same numbers up to float rounding, the first update pays the
            compilation, tens of seconds on a CPU), ``"cuda-graph"`` (CUDA only, through
            ``run_updates``), or ``"auto"`` (the fastest this machine supports; see
            ``resolve_mode``).
    """

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
        dims = (obs_dim, act_dim)
        if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in dims):
            raise ValueError(f"obs_dim and act_dim must be positive integers, got {obs_dim!r} and {act_dim!r}.")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.device = torch.device(device)
        k = config.reward_dim
        self.actor = GaussianPolicy(
            obs_dim, act_dim, config.hidden_dims, config.actor_dropout, config.log_std_min, config.log_std_max
        )
        self.critic = ReplicatedCritic(obs_dim, act_dim, config.hidden_dims, config.num_critics, k)
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
        self._runners: dict[str, UpdateRunner] = {}  # "batch": for update(batch); "data": the last dataset's
        # torch.compile of this agent's update, made once by its first runner and shared by the
        # others (for given batches and for a dataset)
        self.compiled_update: UpdateFn | None = None
        self._lrs_shown: tuple[float, float, float] = (config.value_lr, config.critic_lr, config.actor_lr)

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``copy.deepcopy``, pickle) leaves the runners and the compiled update behind:
        they hold this agent's networks, and the copy makes its own on its first update."""
        state = self.__dict__.copy()
        state["_runners"], state["compiled_update"] = {}, None
        return state

    # ------------------------------------------------------------------ pieces
    def target_q_min(self, obs: Tensor, act: Tensor) -> Tensor:
        """min_i Q_target_i(s, a), sign-aware per reward dimension: [B, k], no gradient."""
        with torch.no_grad():
            return losses.replica_min(self.target_critic(obs, act), self.reward_weights)

    def policy_weights(self, target_q: Tensor, value: Tensor) -> Tensor:
        """AWR weights (Eq. 7), or all ones for behaviour cloning: [B]."""
        return policy_weights(self.config, self.reward_weights, target_q, value)

    def optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam, torch.optim.Adam]:
        """The value network's, the critics' and the actor's Adam, in the update's order."""
        return self.value_opt, self.critic_opt, self.actor_opt

    def networks(self) -> Networks:
        """The networks an update reads and writes (what ``iql_update`` is given)."""
        return Networks(self.value, self.critic, self.target_critic, self.actor, self.reward_weights)

    # ------------------------------------------------------------------ learning rates
    def set_lr(self, value: float | None = None, critic: float | None = None, actor: float | None = None) -> None:
        """Set the learning rates the updates use, in both update orders (the actor's is the base of
        its cosine schedule when ``cosine_actor_lr``): a new ``config``. A compiled update is made
        again on the next call (once)."""
        changes = {
            f"{k}_lr": float(v) for k, v in (("value", value), ("critic", critic), ("actor", actor)) if v is not None
        }
        for key, rate in changes.items():
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"set_lr: {key}={rate!r} must be a finite learning rate > 0.")
        cfg = self.config
        self.config = dataclasses.replace(
            cfg,
            value_lr=changes.get("value_lr", cfg.value_lr),
            critic_lr=changes.get("critic_lr", cfg.critic_lr),
            actor_lr=changes.get("actor_lr", cfg.actor_lr),
        )
        self._runners.clear()
        self.compiled_update = None
        self._show_lrs()

    def _show_lrs(self) -> None:
        """Write the rates of the last update (before any: the config's) into the optimizers'
        ``param_groups``, where logs and ``torch.optim`` read them."""
        cfg = self.config
        rates = (cfg.value_lr, cfg.critic_lr, float(actor_lr_at(cfg, max(self.num_updates - 1, 0))))
        for opt, rate in zip(self.optimizers(), rates, strict=True):
            for group in opt.param_groups:
                group["lr"] = rate
        self._lrs_shown = rates

    def _check_lrs(self) -> None:
        """Refuse a learning rate written into an optimizer's ``param_groups`` by hand: the joint
        update reads the config's rates, so it would change only what is logged."""
        for name, opt, shown in zip(("value", "critic", "actor"), self.optimizers(), self._lrs_shown, strict=True):
            for group in opt.param_groups:
                if float(group["lr"]) != shown:
                    raise ValueError(
                        f"{name}_opt.param_groups' lr was set to {float(group['lr'])!r} by hand; the updates read "
                        f"their rates from the agent's config: use agent.set_lr({name}={float(group['lr'])!r}) instead."
                    )

    # ------------------------------------------------------------------ checks
    def _check_columns(self, obs: Tensor, actions: Tensor, what: str) -> None:
        """A one-line ``ValueError`` when the data's columns are not this agent's dimensions."""
        if obs.shape[-1:] != (self.obs_dim,) or actions.shape[-1:] != (self.act_dim,):
            raise ValueError(
                f"{what} has observations of shape {tuple(obs.shape)} and actions of shape {tuple(actions.shape)}, "
                f"but this agent has obs_dim={self.obs_dim}, act_dim={self.act_dim}: make the agent with the "
                "data's dimensions (IQLAgent(data.obs_dim, data.act_dim, ...))."
            )

    # ------------------------------------------------------------------ update
    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One IQL update on a batch with keys obs [B, d_s], actions [B, d_a], rewards [B, k],
        next_obs [B, d_s], terminals [B]. Returns detached metric tensors (no host sync)."""
        self._check_columns(batch["obs"], batch["actions"], "The batch")
        self._check_lrs()
        if self.config.update_order == "sequential":
            out = sequential_update(self.networks(), self.config, self.optimizers(), self.num_updates, batch)
        else:
            out = self.runner().update(batch, self.num_updates)
        self.num_updates += 1
        self._show_lrs()
        return out

    def runner(self, data: Any = None, generator: torch.Generator | None = None) -> UpdateRunner:
        """The ``UpdateRunner`` of this agent's mode for ``data`` (None: for given batches).

        The runner of the last dataset asked for is kept (a CUDA graph is captured once while
        training goes on on the same data), and only that one: a dataset the agent has moved
        on from is not kept alive by it."""
        slot = "batch" if data is None else "data"
        r = self._runners.get(slot)
        if r is None or r.data is not data or r.generator is not generator:
            self._runners.pop(slot, None)  # the old runner (and its graph) goes before the new one is built
            r = UpdateRunner(
                self.networks(), self.config, self.optimizers(), self.mode, self.device, data, generator,
                fn=self.compiled_update, done=self.num_updates,
            )  # fmt: skip
            self._runners[slot] = r
            if self.mode != "eager":
                self.compiled_update = r.fn
        return r

    def run_updates(self, data: Any, count: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``count`` updates on batches sampled on the device from ``data`` (a ``Transitions``),
        in the agent's update order; returns the metrics of the last one. No host sync inside."""
        if not isinstance(count, numbers.Integral) or isinstance(count, bool) or count < 0:
            raise ValueError(f"run_updates: count must be a whole number of updates >= 0, got {count!r}.")
        self._check_columns(data.obs, data.actions, "The data")
        out: dict[str, Tensor] = {}
        if self.config.update_order == "sequential":
            for _ in range(count):
                out = self.update(data.sample(self.config.batch_size, generator))
            return out
        if count == 0:
            return out
        self._check_lrs()
        out = self.runner(data, generator).run(int(count), self.num_updates)
        self.num_updates += int(count)
        self._show_lrs()
        return out

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: Tensor | np.ndarray, epsilon: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Actions in [-1, 1] for observations ``[..., obs_dim]`` (a batch ``[B, obs_dim]``, or one
        ``[obs_dim]``): the mode, or epsilon-greedy. A numpy array is converted (float32, on the
        agent's device); a last dimension other than ``obs_dim`` raises a one-line ``ValueError``."""
        if isinstance(obs, np.ndarray):
            obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if not isinstance(obs, Tensor) or obs.dim() == 0 or obs.shape[-1] != self.obs_dim:
            shape = tuple(obs.shape) if isinstance(obs, Tensor) else type(obs).__name__
            raise ValueError(
                f"agent.act: observations of shape {shape} do not fit this agent: expected [batch, {self.obs_dim}] "
                f"or [{self.obs_dim}] (obs_dim={self.obs_dim})."
            )
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
        """Restore ``full_state()``; a missing entry or a shape mismatch raises a one-line
        ``ValueError`` saying which."""
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(
                f"The checkpoint lacks {', '.join(missing)}: it is not an IQLAgent's full_state(). Load a "
                "checkpoint this package wrote (its 'agent' entry), or start a new run."
            )
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
        self._show_lrs()  # the rates this config gives at this point of the schedule
