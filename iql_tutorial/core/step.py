"""One whole IQL update as a pure function: losses, gradients, three Adams, the schedule, Polyak.

This is the single place where an IQL step (Kostrikov et al. 2021, Algorithm 1) is written; the
three ways to run it are thin wrappers in :mod:`iql_tutorial.speed.runner` (eager: call it;
``compile``: ``torch.compile`` of it; ``cuda-graph``: the compiled function captured once as a CUDA
graph). What one call does, in order:

1. gather the batch from device-resident tables (or take one given), clip the dataset actions;
2. the joint loss of Eqs. (5)-(7) from one forward pass (``IQLAgent.joint_losses``), and its
   gradients with ``torch.func.grad`` over ``torch.func.functional_call`` (no ``.backward()``, so a
   compiler sees the backward pass as part of the same graph);
3. Adam written out (Kingma & Ba 2015; the same arithmetic as ``torch.optim.Adam``) on the agent's
   own parameters and on the *same* state tensors its three ``torch.optim.Adam`` objects hold, so
   checkpoints and ``full_state()`` see one set of optimizer states whichever way the step ran;
4. the actor's cosine learning rate from a step counter kept on the device;
5. Polyak averaging of the target critics, the update period as a device-side mask.

No Python branch depends on tensor values and nothing syncs with the host, so the same function
compiles into one graph and can be captured as a CUDA graph.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from iql_tutorial.core import losses
from iql_tutorial.core.config import IQLConfig

Batch = dict[str, Tensor]
ACTION_CLIP = 1.0 - 1e-5
TABLE_KEYS = ("obs", "actions", "rewards", "next_obs", "terminals")
MODES = ("auto", "eager", "compile", "cuda-graph")


class Learner(Protocol):
    """What the step uses of its agent (:class:`iql_tutorial.core.agent.IQLAgent`, which imports
    this module): named here so that the step does not import the agent back."""

    config: IQLConfig
    device: torch.device
    num_updates: int

    @property
    def target_critic(self) -> nn.Module: ...

    @property
    def actor_opt(self) -> torch.optim.Optimizer: ...

    def joint_losses(self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor) -> Any: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def buffers(self) -> Iterator[Tensor]: ...


def have_cpp_compiler() -> bool:
    """Whether Inductor's CPU backend can find a C++ compiler."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def resolve_mode(mode: str, device: torch.device | str, update_order: str = "joint") -> tuple[str, str | None]:
    """The mode to run and a one-line note when ``"auto"`` had to settle for a slower one.

    ``"auto"``: ``"cuda-graph"`` on a CUDA device, ``"compile"`` on a CPU with a C++ compiler,
    ``"eager"`` otherwise and for the sequential update order. (The modes themselves are the
    wrappers of :mod:`iql_tutorial.speed.runner`.)
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
            return "eager", "no C++ compiler found (g++/clang++): using the eager step; install one for ~2x."
        return "compile", None
    if mode != "eager" and update_order != "joint":
        raise ValueError(
            f"mode={mode!r} runs the joint update order's step function; update_order='sequential' runs "
            "eagerly only. Use mode='eager' (or 'auto'), or update_order='joint'."
        )
    if mode == "cuda-graph" and device.type != "cuda":
        raise ValueError(f"mode='cuda-graph' needs a CUDA device, not {device}; use mode='compile' on a CPU.")
    return mode, None


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """The paper's actor schedule: base_lr * (1 + cos(pi * t / T)) / 2, constant 0 after T."""
    t = min(step, total_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * t / total_steps))


def cosine_lr_tensor(base_lr: float, step: Tensor, total_steps: int) -> Tensor:
    """``cosine_lr`` computed on the device from a step-counter tensor (no recompile per step)."""
    t = torch.clamp(step, max=total_steps) / total_steps
    return base_lr * 0.5 * (1.0 + torch.cos(math.pi * t))


def adam_update_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """One Adam step in place (Kingma & Ba 2015), as ``torch.optim.Adam`` computes it:

    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;  t <- t + 1
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    ``steps`` are the per-tensor step counters (0-dim tensors), advanced here.
    """
    torch._foreach_add_(steps, 1.0)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)
    for p, m, v, t in zip(params, exp_avgs, exp_avg_sqs, steps, strict=True):
        bias1 = 1.0 - beta1**t
        bias2_sqrt = torch.sqrt(1.0 - beta2**t)
        p.sub_(lr / bias1 * m / (v.sqrt() / bias2_sqrt + eps))


class _JointLoss(nn.Module):
    """The agent's joint losses as a module ``forward``, so ``functional_call`` can swap in
    the parameters that ``torch.func.grad`` differentiates."""

    def __init__(self, agent: Learner) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor) -> Any:
        return self.agent.joint_losses(obs, act, rew, next_obs, term)


def _adam_settings(opt: torch.optim.Optimizer) -> tuple[float, float, float]:
    group = opt.param_groups[0]
    for key, plain in {"weight_decay": 0.0, "amsgrad": False, "maximize": False}.items():
        if group.get(key, plain) != plain:
            raise ValueError(
                f"The IQL step implements plain Adam; this optimizer has {key}={group[key]!r}. Use "
                "update_order='sequential' (torch.optim's own step) for other optimizer settings."
            )
    beta1, beta2 = group["betas"]
    return float(beta1), float(beta2), float(group["eps"])


def _adam_state(opt: torch.optim.Optimizer, p: Tensor) -> dict[str, Tensor]:
    """The optimizer's state for ``p``, created as ``torch.optim.Adam`` would on its first step."""
    state = opt.state[p]
    if not state:
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


class IQLStep:
    """The whole IQL update of one agent (joint order) as a pure function, and how to call it.

    ``fn`` is the pure function: it reads the parameters and Adam states it is given (the agent's
    own tensors), updates them in place and returns the metrics as tensors (no host sync).
    ``run(fn, calls)`` calls a (possibly compiled) version of it once per argument tuple and keeps
    the agent's host-side counter ``num_updates`` and its actor optimizer's ``lr`` in step, so
    logging, checkpoints and a later update carry on exactly.
    """

    def __init__(self, agent: Learner) -> None:
        if agent.config.update_order != "joint":
            raise ValueError(
                "The IQL step computes the joint update order; update_order='sequential' runs eagerly "
                "(IQLAgent.update) with mode='eager'."
            )
        self.agent = agent
        self._module = _JointLoss(agent)
        # (network, its optimizer's name, learning rate); None: the actor's cosine schedule
        self._groups = (("value", "value_opt", float(agent.config.value_lr)),
                        ("critic", "critic_opt", float(agent.config.critic_lr)),
                        ("actor", "actor_opt", None))  # fmt: skip
        self._settings = [_adam_settings(getattr(agent, opt)) for _, opt, _ in self._groups]
        self._names = [
            [f"agent.{net}.{n}" for n, _ in getattr(agent, net).named_parameters()] for net, _, _ in self._groups
        ]
        self.counter = torch.zeros((), device=agent.device)  # the device-side update counter
        self._counter_host = -1  # its host copy: rewritten when num_updates moved elsewhere
        # ``torch.compile`` of ``fn`` once a runner made one (``speed.runner.StepRunner``): kept
        # with the step, so every runner of this step shares one compilation
        self.compiled_fn: Any = None

    # ------------------------------------------------------------------ the pure function
    def _loss(self, trainable: dict[str, Tensor], *batch: Tensor) -> tuple[Tensor, tuple[Any, Any]]:
        total, metrics, per_sample = functional_call(self._module, trainable, batch, strict=False)
        return total, (metrics, per_sample)

    def fn(
        self,
        exp_avgs: list[list[Tensor]],
        exp_avg_sqs: list[list[Tensor]],
        steps: list[list[Tensor]],
        counter: Tensor,
        idx: Tensor | None,
        obs: Tensor,
        act: Tensor,
        rew: Tensor,
        next_obs: Tensor,
        term: Tensor,
    ) -> dict[str, Tensor]:
        """One update. ``idx`` (or ``None``) selects the batch rows of the tables ``obs ... term``;
        the rows are gathered inside, straight into the first kernels."""
        agent, cfg = self.agent, self.agent.config
        if idx is not None:
            obs, act, rew, next_obs, term = obs[idx], act[idx], rew[idx], next_obs[idx], term[idx]
        if cfg.clip_actions:
            act = act.clamp(-ACTION_CLIP, ACTION_CLIP)
        params: list[list[Tensor]] = [list(getattr(agent, net).parameters()) for net, _, _ in self._groups]
        trainable = {
            n: p.detach() for names, ps in zip(self._names, params, strict=True) for n, p in zip(names, ps, strict=True)
        }
        grads, (metrics, per_sample) = grad(self._loss, has_aux=True)(trainable, obs, act, rew, next_obs, term)
        with torch.no_grad():
            actor_lr = cosine_lr_tensor(cfg.actor_lr, counter, cfg.total_steps) if cfg.cosine_actor_lr else cfg.actor_lr
            for i, ((_, _, lr), (beta1, beta2, eps)) in enumerate(zip(self._groups, self._settings, strict=True)):
                gs = [grads[n] for n in self._names[i]]
                adam_update_(
                    params[i], gs, exp_avgs[i], exp_avg_sqs[i], steps[i], actor_lr if lr is None else lr,
                    beta1, beta2, eps,
                )  # fmt: skip
            counter.add_(1.0)
            targets: list[Tensor] = list(agent.target_critic.parameters())
            losses.polyak_update_every(targets, params[1], cfg.tau_target, counter, cfg.target_update_period)
        out = dict(metrics)
        if cfg.compute_priority:
            out["priority"] = losses.priority(per_sample[0], per_sample[1], cfg.priority)
        return out

    # ------------------------------------------------------------------ calling it
    def states(self) -> tuple[list[list[Tensor]], list[list[Tensor]], list[list[Tensor]]]:
        """The Adam states, read from the agent's optimizers: ``load_full_state`` replaces the
        optimizers' state tensors, so they are read again before every run."""
        m, v, t = [], [], []
        for net, opt_name, _ in self._groups:
            opt = getattr(self.agent, opt_name)
            states = [_adam_state(opt, p) for p in getattr(self.agent, net).parameters()]
            m.append([s["exp_avg"] for s in states])
            v.append([s["exp_avg_sq"] for s in states])
            t.append([s["step"] for s in states])
        return m, v, t

    def sync_counter(self) -> None:
        """Point the device counter at the agent's ``num_updates`` if it moved elsewhere (a fresh
        step, a loaded checkpoint, an update through another path)."""
        if self._counter_host != self.agent.num_updates:
            self.counter.fill_(float(self.agent.num_updates))
            self._counter_host = self.agent.num_updates

    def advance(self, n: int) -> None:
        """Account for ``n`` updates done on the device: the host counter and the logged ``lr``."""
        agent = self.agent
        agent.num_updates += n
        self._counter_host = agent.num_updates
        if agent.config.cosine_actor_lr and agent.num_updates > 0:  # what the last update used, for logs
            lr = cosine_lr(agent.config.actor_lr, agent.num_updates - 1, agent.config.total_steps)
            for group in agent.actor_opt.param_groups:
                group["lr"] = lr

    def run(self, fn: Any, calls: Iterable[tuple[Tensor | None, ...]]) -> dict[str, Tensor]:
        """``fn(*states, counter, *call)`` for every call; the metrics of the last (not synced)."""
        self.sync_counter()
        m, v, t = self.states()
        out: dict[str, Tensor] = {}
        n = 0
        for call in calls:
            out = fn(m, v, t, self.counter, *call)
            n += 1
        self.advance(n)
        return out

    def update(self, batch: Batch, fn: Any = None) -> dict[str, Tensor]:
        """One update on ``batch`` (keys obs, actions, rewards, next_obs, terminals)."""
        return self.run(fn or self.fn, [(None, *(batch[k] for k in TABLE_KEYS))])

    def run_sampled(
        self, data: Any, num_steps: int, generator: torch.Generator | None = None, fn: Any = None
    ) -> dict[str, Tensor]:
        """``num_steps`` updates on uniform batches of ``data`` (a ``Transitions`` on the agent's
        device): indices drawn with ``torch.randint`` (the same draws as ``data.sample``)."""
        bs, n = self.agent.config.batch_size, len(data)
        tables = tuple(getattr(data, k) for k in ("obs", "actions", "rewards", "next_obs", "terminals"))

        def calls() -> Iterable[tuple[Tensor | None, ...]]:
            for _ in range(num_steps):
                yield (torch.randint(0, n, (bs,), device=data.device, generator=generator), *tables)

        return self.run(fn or self.fn, calls())
