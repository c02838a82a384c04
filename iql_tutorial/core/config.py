"""Hyperparameters of IQL, with the paper's defaults and range checks.

Defaults follow Kostrikov, Nair & Levine (2021), "Offline Reinforcement Learning with
Implicit Q-Learning" (arXiv:2110.06169), Appendix B, for the MuJoCo locomotion tasks.
Every deviation from the paper is a named option here, so that a score that differs from
the paper can be traced to a setting instead of a silent choice.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

UPDATE_ORDERS = ("joint", "sequential")
POLICY_MODES = ("awr", "bc")
PRIORITIES = ("critic", "critic+value")


@dataclass
class IQLConfig:
    """Everything that defines one IQL learner.

    Attributes:
        expectile: the expectile ``tau`` of the value loss (Eq. 5). 0.7 for locomotion,
            0.9 for sparse-reward navigation (AntMaze). ``tau = 0.5`` is plain mean
            regression (SARSA-like); ``tau -> 1`` approaches the max over the data's actions.
        beta: the inverse temperature of advantage-weighted regression (Eq. 7). 3.0 for
            locomotion, 10.0 for AntMaze. The reference design's ``temperature`` is ``1/beta``.
        max_weight: the clamp on ``exp(beta * A)`` (100 in the paper's code).
        gamma: the discount factor.
        tau_target: the Polyak rate of the target critics (0.005 in the paper). Called
            ``tau_target`` so it cannot be confused with the expectile.
        target_update_period: Polyak-average the target critics every this many updates.
        num_critics: the number of Q replicas N; their min (Eq. 5 and 7 use the min of two).
        reward_weights: weights ``w_k`` of a k-dimensional reward. ``None`` means a scalar
            reward (k = 1, weight 1). The replica min is taken per dimension and is
            sign-aware: for ``w_k < 0`` it takes the max, which is pessimistic for the
            weighted sum.
        hidden_dims: hidden layer widths of every network (two layers of 256 in the paper).
        actor_dropout: dropout in the actor (0.1 for Kitchen/Adroit, none for locomotion).
        log_std_min, log_std_max: bounds on the state-independent log standard deviation.
        actor_lr, critic_lr, value_lr: Adam learning rates, one optimizer each.
        cosine_actor_lr: cosine decay of the actor learning rate over ``total_steps``.
        total_steps: length of training, used by the cosine schedule.
        batch_size: transitions per update.
        update_order: ``"joint"`` computes the value, critic and actor losses from one
            forward pass, as the reference IqlAlgorithm does, so the critic target uses V
            *before* this step's value update. ``"sequential"`` updates V first and uses the
            updated V for the critic target and the advantage, as the official JAX code does.
        policy: ``"awr"`` for IQL's policy extraction, ``"bc"`` for behaviour cloning
            (every weight 1): the baseline built from the same code.
        compute_priority: also return a per-sample priority for a prioritized sampler.
        priority: what the priority is: ``"critic"`` (default), ``sqrt`` of the per-sample
            critic loss (the TD error alone), or ``"critic+value"``, ``sqrt`` of critic plus
            value loss, as the reference design (ALF's ``IqlAlgorithm``) computes it.
        sign_aware_expectile: with reward weights, negate the value residual of dimensions with
            a negative weight, so the expectile is pessimistic for costs as the replica min is
            (default). ``False`` applies the plain upper expectile to every dimension, as the
            reference design does.
        clip_actions: clip dataset actions to ``+-(1 - 1e-5)`` before the log-likelihood.
    """

    expectile: float = 0.7
    beta: float = 3.0
    max_weight: float = 100.0
    gamma: float = 0.99
    tau_target: float = 0.005
    target_update_period: int = 1
    num_critics: int = 2
    reward_weights: list[float] | None = None
    hidden_dims: tuple[int, ...] = (256, 256)
    actor_dropout: float = 0.0
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    cosine_actor_lr: bool = True
    total_steps: int = 1_000_000
    batch_size: int = 256
    update_order: str = "joint"
    policy: str = "awr"
    compute_priority: bool = False
    priority: str = "critic"
    sign_aware_expectile: bool = True
    clip_actions: bool = True

    def __post_init__(self) -> None:
        self.check_types()
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.reward_weights is not None:
            self.reward_weights = [float(w) for w in self.reward_weights]
        self.validate()

    def check_types(self) -> None:
        """Raise ``TypeError`` (one line) naming the first field whose value has the wrong type:
        a string for a number, a fraction for a count, a number for a switch."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), _KINDS.get(f.name)
            if kind is None:
                continue
            if kind == "count" and _is_count(value):
                continue
            if kind == "number" and _is_number(value):
                continue
            if kind == "switch" and isinstance(value, (bool, np.bool_)):
                continue
            if kind == "name" and isinstance(value, str):
                continue
            if kind == "counts" and _is_sequence(value) and all(_is_count(v) for v in value):
                continue
            if kind == "numbers" and (value is None or (_is_sequence(value) and all(_is_number(v) for v in value))):
                continue
            want = {
                "count": "an integer",
                "number": "a number",
                "switch": "True or False",
                "name": "a string",
                "counts": "a sequence of integers, e.g. (256, 256)",
                "numbers": "None or a sequence of numbers, e.g. [1.0, -0.5]",
            }[kind]
            raise TypeError(f"IQLConfig.{f.name}={value!r} ({type(value).__name__}) must be {want}.")

    @property
    def temperature(self) -> float:
        """The reference design's name for ``1 / beta``."""
        return 1.0 / self.beta

    @property
    def reward_dim(self) -> int:
        return 1 if self.reward_weights is None else len(self.reward_weights)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range setting and its valid range."""

        def bad(name: str, value: Any, rule: str) -> None:
            raise ValueError(f"IQLConfig.{name}={value!r} is out of range: {rule}.")

        if not 0.0 < self.expectile < 1.0:
            bad("expectile", self.expectile, "the expectile tau must lie in (0, 1); the paper uses 0.7 or 0.9")
        if not (self.beta > 0 and math.isfinite(self.beta)):
            bad("beta", self.beta, "the inverse temperature must be > 0 and finite (use policy='bc' for cloning)")
        if not (self.max_weight > 0 and math.isfinite(self.max_weight)):
            bad("max_weight", self.max_weight, "the weight clamp must be > 0 and finite (the paper uses 100)")
        if not 0.0 <= self.gamma <= 1.0:
            bad("gamma", self.gamma, "the discount must lie in [0, 1]")
        if not 0.0 < self.tau_target <= 1.0:
            bad("tau_target", self.tau_target, "the Polyak rate must lie in (0, 1]")
        if self.target_update_period < 1:
            bad("target_update_period", self.target_update_period, "must be a positive integer")
        if self.num_critics < 1:
            bad("num_critics", self.num_critics, "need at least one critic replica")
        if self.reward_weights is not None and len(self.reward_weights) == 0:
            bad("reward_weights", self.reward_weights, "give one weight per reward dimension, or None")
        if self.reward_weights is not None and not all(math.isfinite(w) for w in self.reward_weights):
            bad("reward_weights", self.reward_weights, "weights must be finite")
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            bad("hidden_dims", self.hidden_dims, "need at least one hidden layer of positive width")
        if not 0.0 <= self.actor_dropout < 1.0:
            bad("actor_dropout", self.actor_dropout, "dropout must lie in [0, 1)")
        for name in ("log_std_min", "log_std_max"):
            if not math.isfinite(getattr(self, name)):
                bad(name, getattr(self, name), "the log standard deviation bounds must be finite")
        if not self.log_std_min < self.log_std_max:
            bad("log_std_min", self.log_std_min, "must be below log_std_max")
        for name in ("actor_lr", "critic_lr", "value_lr"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                bad(name, getattr(self, name), "learning rates must be > 0 and finite")
        if self.total_steps < 1:
            bad("total_steps", self.total_steps, "need at least one gradient step")
        if self.batch_size < 1:
            bad("batch_size", self.batch_size, "need at least one transition per batch")
        if self.update_order not in UPDATE_ORDERS:
            bad("update_order", self.update_order, f"choose one of {UPDATE_ORDERS}")
        if self.priority not in PRIORITIES:
            bad("priority", self.priority, f"choose one of {PRIORITIES}")
        if self.policy not in POLICY_MODES:
            bad("policy", self.policy, f"choose one of {POLICY_MODES}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IQLConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown IQLConfig fields {sorted(unknown)}; valid fields are {sorted(known)}.")
        return cls(**d)


# what each field holds, checked by ``IQLConfig.check_types``
_KINDS = {
    **dict.fromkeys(("expectile", "beta", "max_weight", "gamma", "tau_target", "actor_dropout", "log_std_min",
                     "log_std_max", "actor_lr", "critic_lr", "value_lr"), "number"),
    **dict.fromkeys(("target_update_period", "num_critics", "total_steps", "batch_size"), "count"),
    **dict.fromkeys(("cosine_actor_lr", "compute_priority", "sign_aware_expectile", "clip_actions"), "switch"),
    **dict.fromkeys(("update_order", "policy", "priority"), "name"),
    "hidden_dims": "counts",
    "reward_weights": "numbers",
}  # fmt: skip


def _is_sequence(v: Any) -> bool:
    return isinstance(v, (tuple, list)) or (isinstance(v, np.ndarray) and v.ndim == 1)


def _is_count(v: Any) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v: Any) -> bool:
    return isinstance(v, (numbers.Real, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_))
