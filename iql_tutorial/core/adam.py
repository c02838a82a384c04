"""Adam written out (Kingma & Ba 2015), the arithmetic of ``torch.optim.Adam`` at its defaults.

The joint update (:func:`iql_tutorial.core.update.iql_update`) steps Adam with :func:`adam_` on
the state tensors of the agent's three ``torch.optim.Adam`` objects (:func:`adam_state`), so that
the whole update compiles into one graph and checkpoints hold one set of optimizer states
whichever way the update ran. ``torch.optim``'s own ``step`` cannot sit in a compiled graph
beside ``torch.func.grad``; the performance appendix measures the alternative.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: A tensor per parameter of the value network, the critics and the actor, in that order.
Groups = list[list[Tensor]]
#: ``torch.optim.Adam``'s defaults, which the paper uses; ``check_plain_adam`` holds the agent to them.
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def adam_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    adam_counts: list[Tensor],
    lr: float | Tensor,
    betas: tuple[float, float] = ADAM_BETAS,
    eps: float = ADAM_EPS,
) -> None:
    """One Adam step in place, the arithmetic of ``torch.optim.Adam``; ``adam_counts`` are the
    steps each parameter has taken (``torch.optim``'s per-parameter ``"step"``):

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  t <- t + 1
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """
    beta1, beta2 = betas
    torch._foreach_add_(adam_counts, 1.0)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)
    for p, m, v, t in zip(params, exp_avgs, exp_avg_sqs, adam_counts, strict=True):
        p.sub_(lr / (1.0 - beta1**t) * m / (v.sqrt() / torch.sqrt(1.0 - beta2**t) + eps))


def adam_state(
    networks: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]
) -> tuple[Groups, Groups, Groups]:
    """The Adam states ``(exp_avgs, exp_avg_sqs, adam_counts)`` of every parameter of each network,
    taken from its ``torch.optim.Adam`` and made as ``torch.optim.Adam`` makes them on its first
    step when they are empty. Read again before every run: loading a checkpoint replaces the
    optimizers' state tensors."""
    m: Groups = []
    v: Groups = []
    t: Groups = []
    for net, opt in zip(networks, optimizers, strict=True):
        check_plain_adam(opt)
        states = []
        for p in net.parameters():
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
