"""Trained policies as small weights-only files, and a run folder's final policy.

A *policy file* (``.pt``) holds the actor's state dict and what it takes to rebuild the actor:
``kind`` (``awr``: IQL's policy, ``bc``: behaviour cloning, ``naive``: the naive offline SAC of
``runs.naive``), ``obs_dim``, ``act_dim``, ``hidden_dims``, and ``info`` (dataset, steps, seed,
provenance). It is loaded as data only (``weights_only``), a few hundred kB, so the book can
show a trained agent act without training it. A ``.json`` beside it repeats the metadata for a
reader.

- ``save_policy_file(path, kind, actor, info)`` writes one;
- ``export_policy(run, path, **provenance)`` writes a run's final policy as a policy file;
- ``load_policy(path)`` reads a policy file, a run folder of ``train`` (its ``checkpoint.pt``)
  or of ``naive`` (its ``naive_policy.pt``) into a ``Policy``;
- ``Policy.act(obs)``: numpy observations in, actions in [-1, 1] out (the mode: the Gaussian's
  mean for IQL and BC, ``tanh`` of the mean for the naive SAC), and ``Policy.dataset``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iql_tutorial.core import methods
from iql_tutorial.core.networks import GaussianPolicy
from iql_tutorial.core.sac import SquashedGaussianActor
from iql_tutorial.utils import atomic_write_bytes, atomic_write_text, load_checkpoint

#: the policy kinds a file may hold: the methods' identifiers (``core.methods``, the one mapping)
KINDS = tuple(methods.LABELS)


@dataclass
class Policy:
    """A trained actor ready to act: ``act(obs)`` gives actions in [-1, 1]."""

    kind: str
    net: nn.Module
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return methods.label(self.kind)

    @property
    def dataset(self) -> str | None:
        return self.info.get("dataset")

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The mode action for one observation ``[d]`` or a batch ``[B, d]``."""
        o = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        one = o.dim() == 1
        o = o.unsqueeze(0) if one else o
        if isinstance(self.net, SquashedGaussianActor):
            a = torch.tanh(self.net(o)[0])
        else:
            assert isinstance(self.net, GaussianPolicy)
            a = self.net.mean_and_log_std(o)[0]
        a_np = a.numpy()
        return a_np[0] if one else a_np


def _build(kind: str, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> nn.Module:
    if kind == "naive":
        return SquashedGaussianActor(obs_dim, act_dim, hidden)
    return GaussianPolicy(obs_dim, act_dim, hidden)


def save_policy_file(path: str | Path, kind: str, actor: nn.Module, info: dict[str, Any] | None = None) -> None:
    """Write ``path`` (.pt: the actor's weights and shape) and ``path`` with .json (the metadata)."""
    if kind not in KINDS:
        raise ValueError(f"policy kind {kind!r}: choose one of {KINDS}.")
    path = Path(path)
    if isinstance(actor, SquashedGaussianActor):
        obs_dim, act_dim, hidden = actor.obs_dim, actor.act_dim, tuple(actor.hidden)
    else:
        linears = [m for m in actor.modules() if isinstance(m, nn.Linear)]
        obs_dim, act_dim = linears[0].in_features, linears[-1].out_features
        hidden = tuple(m.out_features for m in linears[:-1])
    meta = {"kind": kind, "obs_dim": obs_dim, "act_dim": act_dim, "hidden_dims": list(hidden), "info": info or {}}
    state = {k: v.detach().cpu().clone() for k, v in actor.state_dict().items()}
    atomic_write_bytes(path, lambda f: torch.save({**meta, "actor": state}, f))
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")


def _from_file(path: Path) -> Policy:
    d = load_checkpoint(path)
    if "actor" not in d or d.get("kind") not in KINDS:
        raise ValueError(f"{path} is not a policy file (no 'actor' or 'kind'): write one with save_policy_file.")
    net = _build(d["kind"], int(d["obs_dim"]), int(d["act_dim"]), tuple(d["hidden_dims"]))
    net.load_state_dict(d["actor"])
    return Policy(d["kind"], net.eval(), dict(d.get("info", {})))


def _from_train_run(folder: Path) -> Policy:
    ckpt = load_checkpoint(folder / "checkpoint.pt")
    agent = ckpt["agent"]
    config = agent.get("config", {})
    prefix = "actor."
    state = {k[len(prefix) :]: v for k, v in agent["networks"].items() if k.startswith(prefix)}
    kind = config.get("policy", "awr")
    net = _build(kind, int(agent["obs_dim"]), int(agent["act_dim"]), tuple(config.get("hidden_dims", (256, 256))))
    net.load_state_dict(state)
    run = ckpt.get("run", {})
    info = {"dataset": run.get("dataset"), "steps": int(ckpt.get("step", 0)), "seed": run.get("seed"),
            "source": str(folder)}  # fmt: skip
    return Policy(kind, net.eval(), info)


def load_policy(path: str | Path) -> Policy:
    """A policy file, or the final policy of a run folder (``train``'s ``checkpoint.pt``, or
    ``naive``'s ``naive_policy.pt``). A folder with neither raises ``FileNotFoundError``."""
    path = Path(path)
    if path.is_dir():
        if (path / "checkpoint.pt").exists():
            return _from_train_run(path)
        if (path / "naive_policy.pt").exists():
            return _from_file(path / "naive_policy.pt")
        what = "no checkpoint.pt (train it: python -m iql_tutorial train ... --out DIR)"
        if not (path / "run.json").exists():
            what = "no run.json and no checkpoint.pt: not a run folder"
        raise FileNotFoundError(f"run folder {path} has {what}.")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give a run folder or a policy file (.pt).")
    return _from_file(path)


def export_policy(source: str | Path, path: str | Path, **info: Any) -> Policy:
    """The final policy of ``source`` (a run folder or a policy file) written to ``path`` as a
    policy file, its ``info`` extended with ``info`` (provenance: command, commit, hardware, wall time)."""
    policy = load_policy(source)
    policy.info = {**policy.info, **info}
    save_policy_file(path, policy.kind, policy.net, policy.info)
    return policy
