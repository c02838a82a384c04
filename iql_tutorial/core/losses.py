"""The losses and targets of IQL as plain functions of tensors.

Equation numbers refer to Kostrikov, Nair & Levine (2021), arXiv:2110.06169:
Eq. (3) the expectile loss L_2^tau, Eq. (5) the value loss, Eq. (6) the critic loss,
Eq. (7) the advantage-weighted policy loss.

Shapes: B is the batch, N the number of critic replicas, k the reward dimension.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def expectile_loss(u: Tensor, expectile: float) -> Tensor:
    """The asymmetric squared loss L_2^tau(u) = |tau - 1(u < 0)| * u^2 (Eq. 3), elementwise.

    With ``u = target - prediction``, positive errors (prediction too low) weigh ``tau``
    and negative ones ``1 - tau``: for tau > 0.5 the minimiser sits above the mean.
    """
    weight = torch.where(u < 0, 1.0 - expectile, expectile)
    return weight * u.square()


def sign_of_weights(reward_weights: Tensor) -> Tensor:
    """sign(w_k), with 0 counted as +1 so a zero weight still gets the usual min."""
    return torch.where(reward_weights < 0, -1.0, 1.0).to(reward_weights.dtype)


def replica_min(q: Tensor, reward_weights: Tensor | None = None) -> Tensor:
    """Pessimistic reduction over critic replicas, per reward dimension: ``[N, B, k] -> [B, k]``.

    min_i (Q_ik * s_k) * s_k with s_k = sign(w_k): the min for positive weights and the max for
    negative ones, so that sum_k w_k Q_k is pessimistic either way (the clipped double-Q
    trick of TD3, made sign-aware for weighted multi-dimensional rewards).
    """
    if reward_weights is None:
        return q.amin(dim=0)
    s = sign_of_weights(reward_weights)
    return (q * s).amin(dim=0) * s


def td_target(reward: Tensor, next_value: Tensor, terminal: Tensor, gamma: float) -> Tensor:
    """r + gamma * (1 - terminal) * V(s'), the target of every critic replica (Eq. 6).

    ``reward`` and ``next_value`` are [B, k], ``terminal`` is [B] (1.0 where the episode
    ended in a terminal state). A time-limit truncation is *not* terminal: there V(s') is
    still bootstrapped. ``next_value`` should be detached (IQL has no target value network).
    """
    return reward + gamma * (1.0 - terminal).unsqueeze(-1) * next_value


def value_loss_per_sample(
    target_q: Tensor,
    value: Tensor,
    expectile: float,
    reward_weights: Tensor | None = None,
    sign_aware: bool = True,
) -> Tensor:
    """Eq. (5) per sample: L_2^tau(Q_target(s, a) - V(s)), summed over reward dimensions: ``[B]``.

    ``target_q`` is the replica-min of the target critics at the dataset action, detached.
    With reward weights and ``sign_aware`` (the package's default), the expectile is sign-aware
    like the replica min: for a dimension with a negative weight (a cost) the residual is negated,
    so V_k leans toward the *low* values of Q_k over the data's actions, which is the optimistic
    side of the weighted sum sum_k w_k V_k. ``sign_aware=False`` is the reference design's choice
    (ALF's ``IqlAlgorithm``): the plain upper expectile in every dimension.
    """
    u = target_q - value
    if reward_weights is not None and sign_aware:
        u = u * sign_of_weights(reward_weights)
    return expectile_loss(u, expectile).sum(-1)


def value_loss(
    target_q: Tensor,
    value: Tensor,
    expectile: float,
    reward_weights: Tensor | None = None,
    sign_aware: bool = True,
) -> Tensor:
    """Eq. (5): E[L_2^tau(Q_target(s, a) - V(s))], the mean of ``value_loss_per_sample``."""
    return value_loss_per_sample(target_q, value, expectile, reward_weights, sign_aware).mean()


def priority(critic_per_sample: Tensor, value_per_sample: Tensor, mode: str = "critic") -> Tensor:
    """Per-sample priority for a prioritized sampler: ``sqrt(critic loss)`` (``"critic"``, the
    package's default: the TD error alone) or ``sqrt(critic loss + value loss)``
    (``"critic+value"``, the reference design's)."""
    if mode == "critic":
        return critic_per_sample.sqrt()
    if mode == "critic+value":
        return (critic_per_sample + value_per_sample).sqrt()
    raise ValueError(f"priority={mode!r}: choose 'critic' or 'critic+value'.")


def critic_loss_per_sample(q: Tensor, target: Tensor) -> Tensor:
    """Eq. (6) per sample: sum over replicas and reward dimensions of (Q_i - y)^2: ``[B]``."""
    return (q - target.unsqueeze(0)).square().sum(dim=(0, 2))


def advantage(target_q: Tensor, value: Tensor, reward_weights: Tensor | None = None) -> Tensor:
    """A(s, a) = sum_k w_k (Qmin_k(s, a) - V_k(s)): ``[B, k] -> [B]``."""
    diff = target_q - value
    if reward_weights is None:
        return diff.sum(-1)
    return diff @ reward_weights


def awr_weights(adv: Tensor, beta: float, max_weight: float = 100.0) -> Tensor:
    """min(exp(beta * A), max_weight): the advantage weights of Eq. (7).

    Clamping the exponent first (at log(max_weight)) gives the same numbers as clamping
    the exponential and never overflows. (A Python float bound, not a tensor: no host-to-device
    copy, so the function can be captured in a CUDA graph.)
    """
    return torch.exp(torch.clamp(beta * adv, max=math.log(max_weight)))


def awr_loss(weights: Tensor, log_prob: Tensor) -> Tensor:
    """Eq. (7): -E[w * log pi(a | s)], the weights detached."""
    return -(weights.detach() * log_prob).mean()


@torch.no_grad()
def polyak_update(target: list[Tensor], source: list[Tensor], tau_target: float) -> None:
    """target <- (1 - tau_target) * target + tau_target * source, in place, all tensors at once."""
    torch._foreach_lerp_(target, source, tau_target)


@torch.no_grad()
def polyak_update_every(
    target: list[Tensor], source: list[Tensor], tau_target: float, step: Tensor, period: int
) -> None:
    """Polyak averaging on the updates whose (already incremented) counter ``step`` is a multiple
    of ``period``, decided on the device: no Python ``if`` on the step, so it can be compiled or
    captured in a CUDA graph."""
    if period == 1:
        torch._foreach_lerp_(target, source, tau_target)
        return
    w = tau_target * (torch.remainder(step, period) == 0).float()
    torch._foreach_add_(target, torch._foreach_mul(torch._foreach_sub(source, target), w))
