"""One whole IQL update, in the paper's order (Kostrikov, Nair & Levine 2021, Algorithm 1).

:func:`iql_update` is the function: the batch, the value loss (Eq. 5), the critic loss (Eq. 6),
the actor loss (Eq. 7), their gradients, three Adam steps, the actor's cosine schedule and the
Polyak average of the target critics. The runners of :mod:`iql_tutorial.speed.runner` call it as
it is (``"eager"``), through ``torch.compile`` (``"compile"``) or captured once as a CUDA graph
(``"cuda-graph"``). It makes no host sync and no Python branch reads a tensor's value, so one
compiled graph holds all of it.

Two choices make that possible, and both give the numbers of the obvious code:

- gradients come from ``torch.func.grad`` of the summed losses (not ``.backward()``, which a
  compiler cannot put in the same graph). The three losses touch disjoint parameters, so the
  gradient of their sum is each network's gradient of its own loss;
- Adam is written out (:func:`adam_`, the arithmetic of ``torch.optim.Adam``) on the state
  tensors of the agent's three ``torch.optim.Adam`` objects, so checkpoints hold one set of
  optimizer states whichever way the update ran.

The *sequential* order of the official JAX code (V updated first, the actor and the critics then
read the new V) is :func:`sequential_update`: eager, with ``torch.optim``'s own steps.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.func import functional_call, grad

from iql_tutorial.core import losses

if TYPE_CHECKING:
    from iql_tutorial.core.agent import IQLAgent

Batch = dict[str, Tensor]
#: A tensor per parameter of the value network, the critics and the actor, in that order.
Groups = list[list[Tensor]]
ACTION_CLIP = 1.0 - 1e-5
TABLE_KEYS = ("obs", "actions", "rewards", "next_obs", "terminals")
NETWORKS = ("value", "critic", "actor")
#: ``torch.optim.Adam``'s defaults, which the paper uses; ``check_plain_adam`` holds the agent to them.
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def cosine_lr(base_lr: float, step: Tensor | int, total_steps: int) -> Tensor:
    """The paper's actor schedule: base_lr * (1 + cos(pi * t / T)) / 2, then 0 after T updates.

    ``step`` may be a number or a tensor (the update counter on the device); the result is a
    0-dim tensor on ``step``'s device (``float(...)`` on the host)."""
    t = torch.as_tensor(step, dtype=torch.float32).clamp(max=total_steps) / total_steps
    return base_lr * 0.5 * (1.0 + torch.cos(math.pi * t))


def adam_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    lr: float | Tensor,
    betas: tuple[float, float] = ADAM_BETAS,
    eps: float = ADAM_EPS,
) -> None:
    """One Adam step in place (Kingma & Ba 2015), the arithmetic of ``torch.optim.Adam``:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  t <- t + 1
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """
    beta1, beta2 = betas
    torch._foreach_add_(steps, 1.0)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)
    for p, m, v, t in zip(params, exp_avgs, exp_avg_sqs, steps, strict=True):
        p.sub_(lr / (1.0 - beta1**t) * m / (v.sqrt() / torch.sqrt(1.0 - beta2**t) + eps))


def policy_weights(agent: IQLAgent, target_q: Tensor, value: Tensor) -> Tensor:
    """The weights of Eq. (7): min(exp(beta * A), 100) with A = Q_target - V; ones for cloning."""
    if agent.config.policy == "bc":
        return torch.ones(target_q.shape[0], device=target_q.device, dtype=target_q.dtype)
    advantage = losses.advantage(target_q, value, agent.reward_weights)
    return losses.awr_weights(advantage, agent.config.beta, agent.config.max_weight)


def _metrics(
    value_loss: Tensor, critic_loss: Tensor, actor_loss: Tensor, value: Tensor, q: Tensor, weights: Tensor
) -> dict[str, Tensor]:
    """What the trainer logs, as detached tensors (read on the host only at logging intervals)."""
    return {
        "value_loss": value_loss.detach(),
        "critic_loss": critic_loss.detach(),
        "actor_loss": actor_loss.detach(),
        "v_mean": value.detach().mean(),
        "q_mean": q.detach().mean(),
        "weight_mean": weights.mean(),
    }


def iql_losses(
    params: dict[str, dict[str, Tensor]],
    agent: IQLAgent,
    obs: Tensor,
    act: Tensor,
    rew: Tensor,
    next_obs: Tensor,
    term: Tensor,
) -> tuple[Tensor, tuple[dict[str, Tensor], tuple[Tensor, Tensor]]]:
    """Eqs. (5)-(7) from one forward pass, with the networks' weights taken from ``params``.

    Returns the sum of the three losses (what ``torch.func.grad`` differentiates) and, as its
    auxiliary output, the metrics and the per-sample critic and value losses (for priorities).
    """
    cfg, w = agent.config, agent.reward_weights
    p_value, p_critic, p_actor = (params[name] for name in NETWORKS)
    # min_i Q_target_i(s, a), no gradient: the target of Eq. (5) and the Q of the advantage
    target_q = losses.replica_min(agent.target_critic(obs, act), w).detach()
    value = functional_call(agent.value, p_value, (obs,))
    next_value = functional_call(agent.value, p_value, (next_obs,)).detach()

    # Eq. (5): V regresses onto the tau-expectile of the target Q over the data's actions
    v_per_sample = losses.value_loss_per_sample(target_q, value, cfg.expectile, w, cfg.sign_aware_expectile)
    value_loss = v_per_sample.mean()

    # Eq. (6): every critic replica regresses onto r + gamma (1 - d) V(s')
    y = losses.td_target(rew, next_value, term, cfg.gamma)
    q = functional_call(agent.critic, p_critic, (obs, act))
    q_per_sample = losses.critic_loss_per_sample(q, y)
    critic_loss = q_per_sample.mean()

    # Eq. (7): the data's actions, weighted by exp(beta * (Q_target - V)) clamped at 100
    weights = policy_weights(agent, target_q, value.detach())
    log_prob = functional_call(agent.actor, p_actor, (obs, act))
    actor_loss = losses.awr_loss(weights, log_prob)

    metrics = _metrics(value_loss, critic_loss, actor_loss, value, q, weights)
    total = value_loss + critic_loss + actor_loss
    return total, (metrics, (q_per_sample.detach(), v_per_sample.detach()))


def iql_update(
    agent: IQLAgent,
    exp_avgs: Groups,
    exp_avg_sqs: Groups,
    steps: Groups,
    counter: Tensor,
    idx: Tensor | None,
    obs: Tensor,
    act: Tensor,
    rew: Tensor,
    next_obs: Tensor,
    term: Tensor,
) -> dict[str, Tensor]:
    """One IQL update, in place on the agent's weights and on its Adam states.

    ``exp_avgs``, ``exp_avg_sqs``, ``steps``: the Adam state of every parameter of the value
    network, the critics and the actor (:func:`adam_state`); ``counter``: the number of updates
    done so far, a tensor on the device (the schedule and the Polyak period read it); ``idx``:
    the batch's rows of the tables ``obs ... term`` (gathered here), or ``None`` when they are
    the batch. Returns the metrics as tensors (read on the host only at logging intervals).
    """
    cfg = agent.config
    # 1. the batch
    if idx is not None:
        obs, act, rew, next_obs, term = obs[idx], act[idx], rew[idx], next_obs[idx], term[idx]
    if cfg.clip_actions:
        act = act.clamp(-ACTION_CLIP, ACTION_CLIP)

    # 2. the three losses and their gradients, one forward and one backward pass
    params = {name: dict(getattr(agent, name).named_parameters()) for name in NETWORKS}
    detached = {name: {k: p.detach() for k, p in ps.items()} for name, ps in params.items()}
    grads, (metrics, per_sample) = grad(iql_losses, has_aux=True)(detached, agent, obs, act, rew, next_obs, term)

    with torch.no_grad():
        # 3. the actor's learning rate: the cosine schedule of the update counter
        actor_lr = cosine_lr(cfg.actor_lr, counter, cfg.total_steps) if cfg.cosine_actor_lr else cfg.actor_lr
        lrs = (cfg.value_lr, cfg.critic_lr, actor_lr)

        # 4. three Adam steps, one per network
        for i, name in enumerate(NETWORKS):
            p, g = list(params[name].values()), list(grads[name].values())
            adam_(p, g, exp_avgs[i], exp_avg_sqs[i], steps[i], lrs[i])
        counter.add_(1.0)

        # 5. Polyak: the target critics move toward the critics every target_update_period updates
        critic = list(params["critic"].values())
        target = list(agent.target_critic.parameters())
        losses.polyak_update_every(target, critic, cfg.tau_target, counter, cfg.target_update_period)

    if cfg.compute_priority:
        metrics["priority"] = losses.priority(per_sample[0], per_sample[1], cfg.priority)
    return metrics


def adam_state(agent: IQLAgent) -> tuple[Groups, Groups, Groups]:
    """The Adam states (exp_avg, exp_avg_sq, step) of every trainable parameter, taken from the
    agent's three ``torch.optim.Adam`` objects and made as ``torch.optim.Adam`` makes them on its
    first step when they are empty. Read again before every run: loading a checkpoint replaces
    the optimizers' state tensors."""
    m: Groups = []
    v: Groups = []
    t: Groups = []
    for name, opt in zip(NETWORKS, agent.optimizers(), strict=True):
        check_plain_adam(opt)
        states = []
        for p in getattr(agent, name).parameters():
            state = opt.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            states.append(state)
        m.append([s["exp_avg"] for s in states])
        v.append([s["exp_avg_sq"] for s in states])
        t.append([s["step"] for s in states])
    return m, v, t


def check_plain_adam(opt: torch.optim.Optimizer) -> None:
    """:func:`adam_` is Adam at its default settings: refuse an optimizer with others, saying what
    to do."""
    plain = {"betas": ADAM_BETAS, "eps": ADAM_EPS, "weight_decay": 0.0, "amsgrad": False, "maximize": False}
    for group in opt.param_groups:
        for key, value in plain.items():
            have = group.get(key, value)
            if (tuple(have) if key == "betas" else have) != value:
                raise ValueError(
                    f"The IQL update implements Adam at its defaults; this optimizer has {key}={have!r}. "
                    "Use update_order='sequential' (torch.optim's own step) for other optimizer settings."
                )


def sequential_update(agent: IQLAgent, batch: Batch) -> dict[str, Tensor]:
    """The official JAX code's order, eager: V first, then the actor and the critics with the new
    V, each with its own backward pass and ``torch.optim`` step (chapter 5 compares the orders)."""
    cfg, w = agent.config, agent.reward_weights
    obs, act, rew, next_obs, term = (batch[k] for k in TABLE_KEYS)
    if cfg.clip_actions:
        act = act.clamp(-ACTION_CLIP, ACTION_CLIP)
    if cfg.cosine_actor_lr:
        for group in agent.actor_opt.param_groups:
            group["lr"] = float(cosine_lr(cfg.actor_lr, agent.num_updates, cfg.total_steps))
    target_q = losses.replica_min(agent.target_critic(obs, act), w).detach()

    # Eq. (5), and the value step first
    value = agent.value(obs)
    v_per_sample = losses.value_loss_per_sample(target_q, value, cfg.expectile, w, cfg.sign_aware_expectile)
    value_loss = v_per_sample.mean()
    agent.value_opt.zero_grad(set_to_none=True)
    value_loss.backward()
    agent.value_opt.step()
    with torch.no_grad():
        new_value = agent.value(obs)
        next_value = agent.value(next_obs)

    # Eq. (7) with the new V
    weights = policy_weights(agent, target_q, new_value)
    actor_loss = losses.awr_loss(weights, agent.actor(obs, act))
    agent.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    agent.actor_opt.step()

    # Eq. (6) with the new V(s')
    q = agent.critic(obs, act)
    q_per_sample = losses.critic_loss_per_sample(q, losses.td_target(rew, next_value, term, cfg.gamma))
    critic_loss = q_per_sample.mean()
    agent.critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    agent.critic_opt.step()

    agent.num_updates += 1
    if agent.num_updates % cfg.target_update_period == 0:
        losses.polyak_update(list(agent.target_critic.parameters()), list(agent.critic.parameters()), cfg.tau_target)
    metrics = _metrics(value_loss, critic_loss, actor_loss, value, q, weights)
    if cfg.compute_priority:
        metrics["priority"] = losses.priority(q_per_sample.detach(), v_per_sample.detach(), cfg.priority)
    return metrics
