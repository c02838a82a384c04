"""One whole IQL update, in the paper's order (Kostrikov, Nair & Levine 2021, Algorithm 1).

:func:`iql_update` is the function: the batch, the value loss (Eq. 5), the critic loss (Eq. 6),
the actor loss (Eq. 7), their gradients, three Adam steps, the actor's cosine schedule and the
Polyak average of the target critics. It is given the networks (:class:`Networks`), the
hyperparameters (``IQLConfig``) and the Adam states; :mod:`iql_tutorial.core.runner` calls it as
it is (``"eager"``), through ``torch.compile`` (``"compile"``) or captured once as a CUDA graph
(``"cuda-graph"``). It makes no host sync and no Python branch reads a tensor's value, so one
compiled graph holds all of it.

Two choices make that possible, and both give the numbers of the obvious code:

- gradients come from ``torch.func.grad`` of the summed losses (not ``.backward()``, which a
  compiler cannot put in the same graph). The three losses touch disjoint parameters, so the
  gradient of their sum is each network's gradient of its own loss;
- Adam is written out (:func:`iql_tutorial.core.adam.adam_`, the arithmetic of ``torch.optim.Adam``)
  on the state tensors of the agent's three ``torch.optim.Adam`` objects, so checkpoints hold one
  set of optimizer states whichever way the update ran.

The learning rates come from the config (``IQLConfig.value_lr``, ``critic_lr``, ``actor_lr`` and
the actor's cosine schedule) in both orders; ``IQLAgent.set_lr`` changes them.

The *sequential* order of the official JAX code (V updated first, the actor and the critics then
read the new V) is :func:`sequential_update`: eager, with ``torch.optim``'s own steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from iql_tutorial.core import losses
from iql_tutorial.core.adam import Groups, adam_
from iql_tutorial.core.config import IQLConfig

Batch = dict[str, Tensor]
ACTION_CLIP = 1.0 - 1e-5
TABLE_KEYS = ("obs", "actions", "rewards", "next_obs", "terminals")
#: the trained networks, in the order of the update and of its Adam states
NETWORKS = ("value", "critic", "actor")


class Networks(NamedTuple):
    """What one update reads and writes: the value network, the critic replicas, their targets,
    the policy, and the weights ``w_k`` of a k-dimensional reward (None: a scalar reward)."""

    value: nn.Module
    critic: nn.Module
    target_critic: nn.Module
    actor: nn.Module
    reward_weights: Tensor | None

    def trained(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The value network, the critics and the actor (``NETWORKS``' order)."""
        return self.value, self.critic, self.actor


def cosine_lr(base_lr: float, step: Tensor | int, total_steps: int) -> Tensor:
    """The paper's actor schedule: base_lr * (1 + cos(pi * t / T)) / 2, then 0 after T updates.

    ``step`` may be a number or a tensor (the update counter on the device); the result is a
    0-dim tensor on ``step``'s device (``float(...)`` on the host)."""
    t = torch.as_tensor(step, dtype=torch.float32).clamp(max=total_steps) / total_steps
    return base_lr * 0.5 * (1.0 + torch.cos(math.pi * t))


def policy_weights(cfg: IQLConfig, reward_weights: Tensor | None, target_q: Tensor, value: Tensor) -> Tensor:
    """The weights of Eq. (7): min(exp(beta * A), 100) with A = Q_target - V; ones for cloning."""
    if cfg.policy == "bc":
        return torch.ones(target_q.shape[0], device=target_q.device, dtype=target_q.dtype)
    advantage = losses.advantage(target_q, value, reward_weights)
    return losses.awr_weights(advantage, cfg.beta, cfg.max_weight)


def actor_lr_at(cfg: IQLConfig, done: Tensor | int) -> Tensor | float:
    """The actor's learning rate for the update after ``done`` updates: the cosine schedule of
    ``cfg.actor_lr``, or ``cfg.actor_lr`` itself without it."""
    return cosine_lr(cfg.actor_lr, done, cfg.total_steps) if cfg.cosine_actor_lr else cfg.actor_lr


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
    nets: Networks,
    cfg: IQLConfig,
    obs: Tensor,
    act: Tensor,
    rew: Tensor,
    next_obs: Tensor,
    term: Tensor,
) -> tuple[Tensor, tuple[dict[str, Tensor], dict[str, Tensor]]]:
    """Eqs. (5)-(7) from one forward pass, with the networks' weights taken from ``params``
    (``{"value": {...}, "critic": {...}, "actor": {...}}``, each network's named parameters).

    Returns the sum of the three losses (what ``torch.func.grad`` differentiates) and, as its
    auxiliary output, the metrics and the per-sample pieces, detached: ``"critic"`` and
    ``"value"`` losses (for priorities), the policy's ``"weights"`` and ``"log_prob"`` (the
    held-out diagnostics read them).
    """
    w = nets.reward_weights
    p_value, p_critic, p_actor = (params[name] for name in NETWORKS)
    # min_i Q_target_i(s, a), no gradient: the target of Eq. (5) and the Q of the advantage
    target_q = losses.replica_min(nets.target_critic(obs, act), w).detach()
    value = functional_call(nets.value, p_value, (obs,))
    next_value = functional_call(nets.value, p_value, (next_obs,)).detach()

    # Eq. (5): V regresses onto the tau-expectile of the target Q over the data's actions
    v_per_sample = losses.value_loss_per_sample(target_q, value, cfg.expectile, w, cfg.sign_aware_expectile)
    value_loss = v_per_sample.mean()

    # Eq. (6): every critic replica regresses onto r + gamma (1 - d) V(s')
    y = losses.td_target(rew, next_value, term, cfg.gamma)
    q = functional_call(nets.critic, p_critic, (obs, act))
    q_per_sample = losses.critic_loss_per_sample(q, y)
    critic_loss = q_per_sample.mean()

    # Eq. (7): the data's actions, weighted by exp(beta * (Q_target - V)) clamped at 100
    weights = policy_weights(cfg, w, target_q, value.detach())
    log_prob = functional_call(nets.actor, p_actor, (obs, act))
    actor_loss = losses.awr_loss(weights, log_prob)

    metrics = _metrics(value_loss, critic_loss, actor_loss, value, q, weights)
    total = value_loss + critic_loss + actor_loss
    per_sample = {"critic": q_per_sample, "value": v_per_sample, "weights": weights, "log_prob": log_prob}
    return total, (metrics, {k: v.detach() for k, v in per_sample.items()})


def iql_update(
    nets: Networks,
    cfg: IQLConfig,
    exp_avgs: Groups,
    exp_avg_sqs: Groups,
    adam_counts: Groups,
    counter: Tensor,
    idx: Tensor | None,
    obs: Tensor,
    act: Tensor,
    rew: Tensor,
    next_obs: Tensor,
    term: Tensor,
) -> dict[str, Tensor]:
    """One IQL update, in place on the networks' weights and on their Adam states.

    ``nets``: the networks; ``cfg``: the hyperparameters, learning rates included;
    ``exp_avgs``, ``exp_avg_sqs``, ``adam_counts``: the Adam state of every parameter of the value
    network, the critics and the actor (:func:`iql_tutorial.core.adam.adam_state`); ``counter``:
    the number of updates done so far, a tensor on the device (the schedule and the Polyak period
    read it); ``idx``: the batch's rows of the tables ``obs ... term`` (gathered here), or ``None``
    when they are the batch. Returns the metrics as tensors (read on the host only at logging
    intervals).
    """
    # 1. the batch
    if idx is not None:
        obs, act, rew, next_obs, term = obs[idx], act[idx], rew[idx], next_obs[idx], term[idx]
    if cfg.clip_actions:
        act = act.clamp(-ACTION_CLIP, ACTION_CLIP)

    # 2. the three losses and their gradients, one forward and one backward pass
    params: dict[str, dict[str, Tensor]] = {
        name: dict(net.named_parameters()) for name, net in zip(NETWORKS, nets.trained(), strict=True)
    }
    detached = {name: {k: p.detach() for k, p in ps.items()} for name, ps in params.items()}
    grads, (metrics, per_sample) = grad(iql_losses, has_aux=True)(detached, nets, cfg, obs, act, rew, next_obs, term)

    with torch.no_grad():
        # 3. the learning rates: the actor's follows the cosine schedule of the update counter
        lrs = (cfg.value_lr, cfg.critic_lr, actor_lr_at(cfg, counter))

        # 4. three Adam steps, one per network
        for i, name in enumerate(NETWORKS):
            p, g = list(params[name].values()), list(grads[name].values())
            adam_(p, g, exp_avgs[i], exp_avg_sqs[i], adam_counts[i], lrs[i])
        counter.add_(1.0)

        # 5. Polyak: the target critics move toward the critics every target_update_period updates
        critic = list(params["critic"].values())
        target: list[Tensor] = list(nets.target_critic.parameters())
        losses.polyak_update_every(target, critic, cfg.tau_target, counter, cfg.target_update_period)

    if cfg.compute_priority:
        metrics["priority"] = losses.priority(per_sample["critic"], per_sample["value"], cfg.priority)
    return metrics


def sequential_update(
    nets: Networks,
    cfg: IQLConfig,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer, torch.optim.Optimizer],
    done: int,
    batch: Batch,
) -> dict[str, Tensor]:
    """The official JAX code's order, eager: V first, then the actor and the critics with the new
    V, each with its own backward pass and ``torch.optim`` step (chapter 5 compares the orders).
    ``optimizers``: the value network's, the critics' and the actor's; ``done``: the updates done
    before this one (the schedule and the Polyak period read it)."""
    w = nets.reward_weights
    value_opt, critic_opt, actor_opt = optimizers
    obs, act, rew, next_obs, term = (batch[k] for k in TABLE_KEYS)
    if cfg.clip_actions:
        act = act.clamp(-ACTION_CLIP, ACTION_CLIP)
    for opt, lr in zip(optimizers, (cfg.value_lr, cfg.critic_lr, float(actor_lr_at(cfg, done))), strict=True):
        for group in opt.param_groups:
            group["lr"] = lr
    target_q = losses.replica_min(nets.target_critic(obs, act), w).detach()

    # Eq. (5), and the value step first
    value = nets.value(obs)
    v_per_sample = losses.value_loss_per_sample(target_q, value, cfg.expectile, w, cfg.sign_aware_expectile)
    value_loss = v_per_sample.mean()
    value_opt.zero_grad(set_to_none=True)
    value_loss.backward()
    value_opt.step()
    with torch.no_grad():
        new_value = nets.value(obs)
        next_value = nets.value(next_obs)

    # Eq. (7) with the new V
    weights = policy_weights(cfg, w, target_q, new_value)
    actor_loss = losses.awr_loss(weights, nets.actor(obs, act))
    actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    actor_opt.step()

    # Eq. (6) with the new V(s')
    q = nets.critic(obs, act)
    q_per_sample = losses.critic_loss_per_sample(q, losses.td_target(rew, next_value, term, cfg.gamma))
    critic_loss = q_per_sample.mean()
    critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    critic_opt.step()

    if (done + 1) % cfg.target_update_period == 0:
        losses.polyak_update(list(nets.target_critic.parameters()), list(nets.critic.parameters()), cfg.tau_target)
    metrics = _metrics(value_loss, critic_loss, actor_loss, value, q, weights)
    if cfg.compute_priority:
        metrics["priority"] = losses.priority(q_per_sample.detach(), v_per_sample.detach(), cfg.priority)
    return metrics
