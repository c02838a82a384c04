"""Offline diagnostics: what can be measured about a learner without a simulator.

Without an environment there is no return to measure. What can still be measured is how well the
networks fit data they were not trained on: a few whole episodes are held out of training
(``split_episodes``), and every ``eval_every`` steps the trainer writes, for those episodes,
(``offline_diagnostics``, one row of ``diag_log.csv``):

- ``td_error``: the critics' mean squared TD error ``(r + gamma (1 - d) V(s') - Q_i(s, a))^2``,
  averaged over the held-out transitions and the N critic replicas (summed over reward
  dimensions). ``train_log.csv``'s ``critic_loss`` (Eq. 6) sums over the replicas instead, so on
  training batches it is N times this quantity.
- ``expectile_loss``: the value loss of Eq. (5), ``L_2^tau(min_i Q_target_i(s, a) - V(s))``.
- ``log_likelihood``: the policy's mean log-density of the held-out actions (nats per action
  vector, in the policy's [-1, 1] action units, dropout off).
- ``weighted_log_likelihood``: the same log-densities averaged with the advantage weights of
  Eq. (7), ``w = min(exp(beta A), max_weight)`` with ``A = min_i Q_target_i(s, a) - V(s)``,
  **normalised by the weights' sum**: ``sum(w log pi) / sum(w)``. It is a weighted mean in the
  same units as ``log_likelihood``; above it, the policy fits the held-out actions the critics
  rate as good better than the average ones. (Eq. 7's loss is ``-mean(w log pi)``, the
  unnormalised form; ``weight_mean`` is logged so it can be recovered: it is
  ``-weighted_log_likelihood * weight_mean``.) The weights use the config's ``beta`` whatever the
  policy choice, so a behaviour-cloning run is scored by the same critics' view of the actions.
- ``weight_mean``: the mean of those weights on the held-out transitions.

Values and losses are in the training reward's units (after ``reward_norm``). These numbers say how
well the learner fits held-out logged behaviour; they do not say how much return the policy would
get: a policy can fit the data well and act poorly, and the critics' view of an action is itself
learned from the same data.

Everything here runs on the agent's device without a host sync until the final ``float``, which the
trainer calls only when it logs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import fields

import numpy as np
import torch
from torch import Tensor

from iql_tutorial.core.agent import IQLAgent
from iql_tutorial.core.update import ACTION_CLIP, NETWORKS, iql_losses
from iql_tutorial.data.transitions import Transitions

DIAG_COLUMNS = ["step", "td_error", "expectile_loss", "log_likelihood", "weighted_log_likelihood", "weight_mean",
                "wall_s"]  # fmt: skip
SPLIT_STREAM = 0x5EED_0FF  # the split's own random stream: it never touches the training run's generators


def held_out_episodes(episode_ids: Tensor | np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The (sorted) ids of the episodes held out for validation.

    ``round(fraction * E)`` of the E episodes, at least one when ``fraction > 0`` and at most
    ``E - 1`` (training keeps one); none when ``fraction == 0`` or E < 2. Chosen uniformly by a
    generator seeded with ``seed`` alone (not the global RNG), so the same seed always holds out the
    same episodes, in a fresh run and in a resumed one.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction={fraction} must lie in [0, 1) (0 disables the held-out split).")
    ids = episode_ids.cpu().numpy() if isinstance(episode_ids, Tensor) else np.asarray(episode_ids)
    episodes = np.unique(ids)
    n = len(episodes)
    if fraction == 0.0 or n < 2:
        return np.zeros(0, dtype=np.int64)
    k = min(max(int(math.floor(fraction * n + 0.5)), 1), n - 1)
    rng = np.random.default_rng([int(seed), SPLIT_STREAM])
    return np.sort(rng.choice(episodes, size=k, replace=False)).astype(np.int64)


def _rows(t: Transitions, mask: Tensor) -> Transitions:
    return Transitions(**{f.name: getattr(t, f.name)[mask] for f in fields(Transitions)})


def split_episodes(t: Transitions, fraction: float, seed: int) -> tuple[Transitions, Transitions | None]:
    """(training transitions, held-out transitions or None): whole episodes, ``held_out_episodes``
    of them held out. Rows keep their order and their episode ids."""
    val_eps = held_out_episodes(t.episode_ids, fraction, seed)
    if len(val_eps) == 0:
        return t, None
    mask = torch.isin(t.episode_ids, torch.as_tensor(val_eps, device=t.device))
    return _rows(t, ~mask), _rows(t, mask)


@torch.no_grad()
def diagnostic_sums(agent: IQLAgent, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-batch sums (tensors on the device) of what ``offline_diagnostics`` averages:
    ``td``, ``expectile``, ``logp``, ``wlogp`` and ``w`` (float64, 0-d): the update's own losses
    (``iql_losses``) on the networks' weights, with AWR weights whatever the policy choice."""
    cfg = dataclasses.replace(agent.config, policy="awr")
    nets = agent.networks()
    params: dict[str, dict[str, Tensor]] = {
        name: dict(net.named_parameters()) for name, net in zip(NETWORKS, nets.trained(), strict=True)
    }
    obs, act, rew, next_obs, term = (batch[k] for k in ("obs", "actions", "rewards", "next_obs", "terminals"))
    if cfg.clip_actions:  # as the update does, before the critics and the log-likelihood
        act = act.clamp(-ACTION_CLIP, ACTION_CLIP)
    was_training = agent.actor.training
    agent.actor.eval()  # no dropout: the policy that would act
    try:
        _, (_, per_sample) = iql_losses(params, nets, cfg, obs, act, rew, next_obs, term)
    finally:
        agent.actor.train(was_training)
    td = per_sample["critic"] / cfg.num_critics  # [B]: Eq. (6) sums over the replicas; this is their mean
    w, logp = per_sample["weights"], per_sample["log_prob"]
    d = torch.float64
    return {
        "td": td.sum(dtype=d),
        "expectile": per_sample["value"].sum(dtype=d),
        "logp": logp.sum(dtype=d),
        "wlogp": (w * logp).sum(dtype=d),
        "w": w.sum(dtype=d),
    }


def offline_diagnostics_tensors(agent: IQLAgent, t: Transitions, chunk_size: int = 65_536) -> dict[str, Tensor]:
    """``offline_diagnostics`` as 0-d tensors on the device (no host sync), in chunks of
    ``chunk_size`` rows so a large held-out set needs little memory."""
    if len(t) == 0:
        raise ValueError("offline diagnostics need at least one held-out transition.")
    total: dict[str, Tensor] = {}
    for start in range(0, len(t), chunk_size):
        idx = torch.arange(start, min(start + chunk_size, len(t)), device=t.device)
        for k, v in diagnostic_sums(agent, t.batch(idx)).items():
            total[k] = total[k] + v if k in total else v
    n = float(len(t))
    return {
        "td_error": total["td"] / n,
        "expectile_loss": total["expectile"] / n,
        "log_likelihood": total["logp"] / n,
        "weighted_log_likelihood": total["wlogp"] / total["w"],
        "weight_mean": total["w"] / n,
    }


def offline_diagnostics(agent: IQLAgent, t: Transitions, chunk_size: int = 65_536) -> dict[str, float]:
    """The held-out diagnostics of the module docstring, as floats (one host sync)."""
    out = offline_diagnostics_tensors(agent, t, chunk_size)
    values = torch.stack(list(out.values())).cpu().tolist()
    return dict(zip(out, values, strict=True))
