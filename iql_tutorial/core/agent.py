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

The agent's ``mode`` says how the joint update runs (the runners of :mod:`iql_tutorial.speed.runner`):
``"eager"`` calls ``iql_update``, ``"compile"`` calls it through ``torch.compile``, ``"cuda-graph"``
replays it captured as a CUDA graph (``run_updates``). No host sync on the way: the losses come
back as tensors, and the trainer reads them only at logging intervals.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from iql_tutorial.core import losses
from iql_tutorial.core.config import IQLConfig
from iql_tutorial.core.networks import GaussianPolicy, ReplicatedCritic, ValueNetwork
from iql_tutorial.core.update import ACTION_CLIP, policy_weights, sequential_update

Batch = dict[str, Tensor]
MODES = ("auto", "eager", "compile", "cuda-graph")
__all__ = ["ACTION_CLIP", "MODES", "IQLAgent", "have_cpp_compiler", "resolve_mode"]


def have_cpp_compiler() -> bool:
    """Whether Inductor's CPU backend can find a C++ compiler."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def resolve_mode(mode: str, device: torch.device | str, update_order: str = "joint") -> tuple[str, str | None]:
    """The mode to run and a one-line note when ``"auto"`` had to settle for a slower one.

    ``"auto"``: ``"cuda-graph"`` on a CUDA device, ``"compile"`` on a CPU with a C++ compiler,
    ``"eager"`` otherwise and for the sequential update order.
    """
    device = torch.device(device)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}.")
    if mode == "auto":
        if update_order != "joint":
            return "eager", "update_order='sequential' runs eagerly (three backward passes by design)."
        if device.type == "cuda":
            return "cuda-graph", None
        if not have_cpp_compiler():
            return "eager", "no C++ compiler found (g++/clang++): using the eager update; install one for ~2x."
        return "compile", None
    if mode != "eager" and update_order != "joint":
        raise ValueError(
            f"mode={mode!r} runs the joint update order's function; update_order='sequential' runs "
            "eagerly only. Use mode='eager' (or 'auto'), or update_order='joint'."
        )
    if mode == "cuda-graph" and device.type != "cuda":
        raise ValueError(f"mode='cuda-graph' needs a CUDA device, not {device}; use mode='compile' on a CPU.")
    return mode, None


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this PyTorch has it for the device; foreach otherwise.
    The joint update steps Adam on these optimizers' own state tensors (``core.update.adam_``);
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

    #: What runs the joint update in the agent's mode: ``iql_tutorial.speed.runner.UpdateRunner``,
    #: plugged in by the package's ``__init__``. The speed layer wraps ``core.update``, so core
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
        self._runners: dict[str, Any] = {}  # "batch": for update(batch); "data": the last dataset's
        # torch.compile of this agent's update, made once by the speed layer's runner and shared
        # by its runners (for given batches and for a dataset)
        self.compiled_update: Callable[..., Any] | None = None

    # ------------------------------------------------------------------ pieces
    def target_q_min(self, obs: Tensor, act: Tensor) -> Tensor:
        """min_i Q_target_i(s, a), sign-aware per reward dimension: [B, k], no gradient."""
        with torch.no_grad():
            return losses.replica_min(self.target_critic(obs, act), self.reward_weights)

    def policy_weights(self, target_q: Tensor, value: Tensor) -> Tensor:
        """AWR weights (Eq. 7), or all ones for behaviour cloning: [B]."""
        return policy_weights(self, target_q, value)

    def optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam, torch.optim.Adam]:
        """The value network's, the critics' and the actor's Adam, in the update's order."""
        return self.value_opt, self.critic_opt, self.actor_opt

    # ------------------------------------------------------------------ update
    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One IQL update on a batch with keys obs [B, d_s], actions [B, d_a], rewards [B, k],
        next_obs [B, d_s], terminals [B]. Returns detached metric tensors (no host sync)."""
        if self.config.update_order == "sequential":
            return sequential_update(self, batch)
        return self.runner().update(batch)

    def runner(self, data: Any = None, generator: torch.Generator | None = None) -> Any:
        """The ``UpdateRunner`` of this agent's mode for ``data`` (None: for given batches).

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

    def run_updates(self, data: Any, count: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``count`` updates on batches sampled on the device from ``data`` (a
        ``Transitions``); returns the metrics of the last one. No host sync inside."""
        if self.config.update_order == "sequential":
            out: dict[str, Tensor] = {}
            for _ in range(count):
                out = self.update(data.sample(self.config.batch_size, generator))
            return out
        return self.runner(data, generator).run(count)

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
