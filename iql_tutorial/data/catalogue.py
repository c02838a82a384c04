"""The book's datasets by name: ids, short names, environments, kinds and sizes.

What each dataset is, not how it is made (that is :mod:`iql_tutorial.datasets.recipes`, which
imports this catalogue): the loader reads it to turn a short name such as ``pendulum-medium`` into
its id in an error message, without importing the dataset-making code. Ids read
``iqlbook/<env>/<kind>-v0``; short names ``<env>-<kind>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "iqlbook"


SAC_KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert")


@dataclass(frozen=True)
class SacEnv:
    """An environment whose datasets come from a SAC run, and the size of each dataset."""

    key: str
    env_id: str
    episodes: int | None = None  # per rollout dataset (random, medium, expert), or
    steps: int | None = None  # transitions per rollout dataset (whole episodes, at least this many)
    shipped: tuple[str, ...] = ()  # kinds committed to the repository (others: built on demand)
    kinds: tuple[str, ...] = SAC_KINDS
    best_is_expert: bool = True  # False: the best policy trained here is far from an expert's level


# MuJoCo: a few CPU-minutes of SAC gave D4RL-"medium"-level policies on HalfCheetah and Walker2d,
# so those have no "expert" datasets, and ref_max_score is "the best policy trained here".
# 50,000 transitions per rollout dataset keep the committed data under ~50 MB (D4RL: 1,000,000).
_MUJOCO: dict[str, Any] = {"steps": 50_000, "shipped": ("medium", "medium-replay"), "kinds": ("random", "medium", "medium-replay"),
           "best_is_expert": False}  # fmt: skip


SAC_ENVS = {
    "pendulum": SacEnv("pendulum", "Pendulum-v1", episodes=100,
                       shipped=("random", "medium", "medium-replay", "expert", "medium-expert")),
    # Hopper's best snapshot scores ~3,100 (D4RL's expert: ~3,200): an expert, so all five kinds exist.
    "hopper": SacEnv("hopper", "Hopper-v5", **{**_MUJOCO, "kinds": SAC_KINDS, "best_is_expert": True}),
    "halfcheetah": SacEnv("halfcheetah", "HalfCheetah-v5", **_MUJOCO),
    "walker2d": SacEnv("walker2d", "Walker2d-v5", **{**_MUJOCO, "shipped": ("medium-replay",)}),
}  # fmt: skip
MAZE_STEPS = {"umaze": 100_000, "medium": 150_000}
MAZE_ERRANDS = {"umaze": 8, "medium": 3}  # targets per episode (the U-maze's errands are short)


@dataclass(frozen=True)
class Recipe:
    """One dataset: its id, short name, environment and how to make it."""

    dataset_id: str
    short: str
    env_id: str
    family: str  # "sac" or "maze"
    env_key: str  # pendulum, hopper, ... or the maze name
    kind: str
    shipped: bool
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A one-paragraph description stored in the dataset's metadata."""
        if self.family == "maze":
            return (
                f"{self.env_id}: a point in the '{self.env_key}' maze (obs = [x, y]); a waypoint controller "
                f"(BFS over cells + P control, Gaussian action noise std 0.5) runs {MAZE_ERRANDS[self.env_key]} errands per episode from a "
                "random cell to random cells (truncated on arrival at the last), D4RL maze2d style; reward 1 and "
                "termination at the fixed goal. No episode is aimed from the start cell to the goal: returns need stitching. ref_min: random actions; ref_max: noise-free controller aimed at the goal."
            )
        what = {
            "random": "uniform random actions",
            "medium": "the sampled SAC 'medium' snapshot (~40% of the way from random to the best policy trained here)",
            "medium-replay": "the SAC training run's replay buffer up to the medium snapshot",
            "expert": "the sampled SAC 'expert' snapshot (the best policy trained here)",
            "medium-expert": "the medium and expert datasets together",
        }[self.kind]
        text = (
            f"{self.env_id}, {what}. Made by iql_tutorial in D4RL's way; ref_min_score: random policy; "
            "ref_max_score: the best SAC snapshot with its mean action (see data/behaviour/)."
        )
        if not SAC_ENVS[self.env_key].best_is_expert:
            text += (
                " That policy is far below an expert (a short CPU training run), so a normalized score of 100 "
                "means 'as good as the best policy trained here'; compare normalized scores with D4RL's in shape only."
            )
        return text


def _recipes() -> dict[str, Recipe]:
    out: dict[str, Recipe] = {}
    for env in SAC_ENVS.values():
        for kind in env.kinds:
            r = Recipe(f"{NAMESPACE}/{env.key}/{kind}-v0", f"{env.key}-{kind}", env.env_id, "sac", env.key, kind,
                       kind in env.shipped)  # fmt: skip
            out[r.dataset_id] = r
    from iql_tutorial.envs import ENV_IDS

    for maze, steps in MAZE_STEPS.items():
        r = Recipe(f"{NAMESPACE}/pointmaze/{maze}-v0", f"pointmaze-{maze}", ENV_IDS[maze], "maze", maze, maze, True,
                   {"steps": steps})  # fmt: skip
        out[r.dataset_id] = r
    return out


RECIPES: dict[str, Recipe] = _recipes()


def resolve(name: str) -> Recipe:
    """A recipe from a dataset id or a short name; the error lists every known name."""
    if name in RECIPES:
        return RECIPES[name]
    for r in RECIPES.values():
        if name in (r.short, r.dataset_id.removesuffix("-v0")):
            return r
    names = "\n  ".join(f"{r.short:28s} {r.dataset_id}" for r in RECIPES.values())
    raise KeyError(f"Unknown dataset '{name}'. Known datasets (short name, id):\n  {names}")
