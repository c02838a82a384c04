"""The whole IQL update as one compiled function: losses, gradients, three Adams, Polyak.

``IQLAgent(compile=True)`` compiles the losses' forward and backward, but the autograd
engine, the three optimizer calls and the Polyak update still run eagerly around it, each a
separate kernel (and on a CPU each kernel wakes the OpenMP worker threads). Here the whole
update of Algorithm 1 is one pure function that ``torch.compile`` sees end to end:

1. the gradients of the joint loss with ``torch.func.grad`` over ``torch.func.functional_call``
   (no ``.backward()``: the backward pass is part of the same graph);
2. Adam written out (Kingma & Ba 2015, Algorithm 1; the same arithmetic as ``torch.optim.Adam``)
   on the agent's own parameters and on the *same* state tensors its three ``torch.optim.Adam``
   objects hold, so checkpoints, ``full_state()`` and the eager path keep working unchanged;
3. the actor's cosine learning rate computed on the device from a step counter kept there;
4. Polyak averaging with the update period as a device-side mask (no Python ``if``).

Inductor then fuses the elementwise work of all four (activation gradients, the Adam updates
of every tensor, the target lerp) into a few dozen kernels around the matmuls. Measured gains
and the settings they depend on are in the book's performance appendix and in
``iql_tutorial.bench``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from iql_tutorial import losses
from iql_tutorial.agent import ACTION_CLIP, IQLAgent, cosine_lr, cosine_lr_tensor

Batch = dict[str, Tensor]


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

    def __init__(self, agent: IQLAgent) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor) -> Any:
        return self.agent.joint_losses(obs, act, rew, next_obs, term)


def _adam_settings(opt: torch.optim.Optimizer) -> tuple[float, float, float]:
    group = opt.param_groups[0]
    unsupported = {
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
    }
    for key, plain in unsupported.items():
        if group.get(key, plain) != plain:
            raise ValueError(
                f"WholeStep implements plain Adam; this optimizer has {key}={group[key]!r}. Use the eager update "
                "(IQLAgent.update) for other optimizer settings."
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


def default_inductor_options(device: torch.device) -> dict[str, Any]:
    """Inductor settings for the whole step, each measured in the performance appendix.

    On a CPU: ``cpp_wrapper`` (the compiled graph's kernel calls are made from C++, not a
    Python wrapper), and, when OpenMP threads sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``,
    this project's default), single-threaded elementwise kernels: waking the second thread
    costs more than the kernel itself at batch 256. With spinning threads that setting is
    slower, so it is left off.
    """
    if device.type != "cpu":
        return {}
    options: dict[str, Any] = {"cpp_wrapper": True}
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        options["cpp.min_chunk_size"] = 1 << 20
    return options


class WholeStep:
    """The whole IQL update (joint order) as one function, compiled or eager.

    Args:
        agent: the learner; its parameters and optimizer states are updated in place.
        compile: ``torch.compile`` the step (default); ``False`` runs the same function eagerly
            (useful to check the compiled one against it).
        options: Inductor options (default: ``default_inductor_options(agent.device)``).

    ``step(batch)`` does one update and returns the metrics as tensors (no host sync). The
    agent's ``num_updates`` and its actor optimizer's ``lr`` are kept in step, so logging,
    checkpoints and a later eager ``agent.update`` carry on exactly.
    """

    def __init__(self, agent: IQLAgent, compile: bool = True, options: dict[str, Any] | None = None) -> None:
        cfg = agent.config
        if cfg.update_order != "joint":
            raise ValueError(
                "WholeStep computes the joint update order; for update_order='sequential' use IQLAgent.update."
            )
        self.agent = agent
        self._module = _JointLoss(agent)
        # (network, its optimizer's name, learning rate); None: the actor's cosine schedule, on the device
        self._groups = (("value", "value_opt", float(cfg.value_lr)), ("critic", "critic_opt", float(cfg.critic_lr)),
                        ("actor", "actor_opt", None))  # fmt: skip
        self._settings = [_adam_settings(getattr(agent, opt)) for _, opt, _ in self._groups]
        self._names = [
            [f"agent.{net}.{n}" for n, _ in getattr(agent, net).named_parameters()] for net, _, _ in self._groups
        ]
        self._step = torch.zeros((), device=agent.device)
        self._step_host = -1  # the host's copy of the counter: rewritten when num_updates moves elsewhere
        fn = self._step_fn
        if compile:
            opts = default_inductor_options(agent.device) if options is None else options
            fn = torch.compile(fn, fullgraph=True, dynamic=False, options=opts or None)
        self._fn, self._compile, self._compiled_once = fn, compile, False

    # ------------------------------------------------------------------ the pure step
    def _loss(self, trainable: dict[str, Tensor], *batch: Tensor) -> tuple[Tensor, tuple[Any, Tensor]]:
        total, metrics, per_sample = functional_call(self._module, trainable, batch, strict=False)
        return total, (metrics, per_sample)

    def _step_fn(
        self,
        exp_avgs: list[list[Tensor]],
        exp_avg_sqs: list[list[Tensor]],
        steps: list[list[Tensor]],
        step: Tensor,
        idx: Tensor | None,
        obs: Tensor,
        act: Tensor,
        rew: Tensor,
        next_obs: Tensor,
        term: Tensor,
    ) -> dict[str, Tensor]:
        cfg = self.agent.config
        if idx is not None:  # the batch is gathered inside the graph, straight into the first kernels
            obs, act, rew, next_obs, term = obs[idx], act[idx], rew[idx], next_obs[idx], term[idx]
        if cfg.clip_actions:
            act = act.clamp(-ACTION_CLIP, ACTION_CLIP)
        agent = self.agent
        params = [list(getattr(agent, net).parameters()) for net, _, _ in self._groups]
        trainable = {n: p.detach() for names, ps in zip(self._names, params) for n, p in zip(names, ps)}
        grads, (metrics, per_sample) = grad(self._loss, has_aux=True)(trainable, obs, act, rew, next_obs, term)
        with torch.no_grad():
            # the actor's cosine schedule from the device-side counter: no recompile per step
            actor_lr = cosine_lr_tensor(cfg.actor_lr, step, cfg.total_steps) if cfg.cosine_actor_lr else cfg.actor_lr
            for i, ((_, _, lr), (beta1, beta2, eps)) in enumerate(zip(self._groups, self._settings)):
                gs = [grads[n] for n in self._names[i]]
                adam_update_(
                    params[i], gs, exp_avgs[i], exp_avg_sqs[i], steps[i], actor_lr if lr is None else lr,
                    beta1, beta2, eps,
                )  # fmt: skip
            step.add_(1.0)
            targets = list(agent.target_critic.parameters())
            losses.polyak_update_every(targets, params[1], cfg.tau_target, step, cfg.target_update_period)
        out = dict(metrics)
        if cfg.compute_priority:
            out["priority"] = per_sample.sqrt()
        return out

    # ------------------------------------------------------------------ calling it
    def _call(self, *args: Any) -> dict[str, Tensor]:
        if not self._compile or self._compiled_once:
            return self._fn(*args)
        try:  # the first call compiles: say plainly what to do if the toolchain is missing
            out = self._fn(*args)
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise RuntimeError(
                f"Compiling the whole IQL step failed ({type(e).__name__}: {first}). On a CPU, torch.compile "
                "needs a working C++ compiler (g++ or clang; e.g. `apt-get install g++`). Train without "
                "--compile (or WholeStep(agent, compile=False)) to use the eager update instead."
            ) from e
        self._compiled_once = True
        return out

    def _states(self) -> tuple[list[list[Tensor]], ...]:
        """The Adam states, read from the agent's optimizers on every call: ``load_full_state``
        replaces the optimizers' state tensors, and the step must update the current ones."""
        m, v, t = [], [], []
        for net, opt_name, _ in self._groups:
            opt = getattr(self.agent, opt_name)
            states = [_adam_state(opt, p) for p in getattr(self.agent, net).parameters()]
            m.append([s["exp_avg"] for s in states])
            v.append([s["exp_avg_sq"] for s in states])
            t.append([s["step"] for s in states])
        return m, v, t

    def step(self, batch: Batch) -> dict[str, Tensor]:
        """One update on ``batch`` (keys as for ``IQLAgent.update``)."""
        return self.run([batch])

    def run(self, batches: Any) -> dict[str, Tensor]:
        """One update per batch of the iterable; the metrics of the last (tensors, not synced)."""
        return self._run((None, b["obs"], b["actions"], b["rewards"], b["next_obs"], b["terminals"]) for b in batches)

    def run_sampled(self, data: Any, num_steps: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``num_steps`` updates on uniform batches of ``data`` (a ``Transitions`` on the agent's
        device): the indices are drawn with ``torch.randint`` (the same draws as
        ``data.sample``), the rows gathered inside the compiled graph."""
        bs, n = self.agent.config.batch_size, len(data)
        tables = (data.obs, data.actions, data.rewards, data.next_obs, data.terminals)

        def calls() -> Any:
            for _ in range(num_steps):
                yield (torch.randint(0, n, (bs,), device=data.device, generator=generator), *tables)

        return self._run(calls())

    def _run(self, calls: Any) -> dict[str, Tensor]:
        agent = self.agent
        if self._step_host != agent.num_updates:  # a fresh runner, or a checkpoint was loaded
            self._step.fill_(float(agent.num_updates))
        m, v, t = self._states()
        out: dict[str, Tensor] = {}
        for args in calls:
            out = self._call(m, v, t, self._step, *args)
            agent.num_updates += 1
        self._step_host = agent.num_updates
        if agent.config.cosine_actor_lr and agent.num_updates > 0:  # what the last update used, for logs
            lr = cosine_lr(agent.config.actor_lr, agent.num_updates - 1, agent.config.total_steps)
            for group in agent.actor_opt.param_groups:
                group["lr"] = lr
        return out
