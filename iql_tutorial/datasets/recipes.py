"""How each of the project's datasets is made (D4RL's recipes, at a CPU-friendly size).

=================  ===========================================================================
kind               made by
=================  ===========================================================================
random             uniform random actions
medium             the sampled SAC "medium" snapshot (about 40% of the way from random to expert)
medium-replay      every transition of the SAC run up to the medium snapshot (its replay buffer)
expert             the sampled SAC "expert" snapshot (the best policy trained here)
medium-expert      medium and expert episodes together
umaze / medium     (navigation) a noisy waypoint controller driving to random cells
=================  ===========================================================================

The catalogue (ids, short names, environments, sizes: ``RECIPES``, ``resolve``) lives in
:mod:`iql_tutorial.data.catalogue`, where the loader's error messages read it; it is importable
from here as well. Every build is deterministic: episode ``i`` resets with ``seed + i`` and the policy's noise
comes from a generator seeded with ``seed``. Ids read ``iqlbook/<env>/<kind>-v0``; short names
``<env>-<kind>`` (``pendulum-medium``) are accepted everywhere an id is.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from iql_tutorial.data.catalogue import (  # re-exported: the names this module always had
    MAZE_ERRANDS,
    MAZE_STEPS,
    NAMESPACE,
    RECIPES,
    SAC_ENVS,
    SAC_KINDS,
    Recipe,
    SacEnv,
    resolve,
)
from iql_tutorial.datasets import minari_io
from iql_tutorial.datasets.behaviour import behaviour_dir, load_replay, read_behaviour
from iql_tutorial.datasets.minari_io import Episode
from iql_tutorial.datasets.rollouts import collect, episodes_from_replay, sac_policy, uniform_policy
from iql_tutorial.utils import box

__all__ = [
    "AUTHOR", "MAZE_ERRANDS", "MAZE_STEPS", "NAMESPACE", "RECIPES", "SAC_ENVS", "SAC_KINDS", "SEEDS", "Recipe", "SacEnv",
    "build", "buildable", "ensure_dataset", "format_table", "markdown_table", "resolve", "table_rows",
]  # fmt: skip
AUTHOR = "iql_tutorial (IQL from scratch)"
SEEDS = {"random": 100_000, "medium": 200_000, "expert": 300_000, "maze": 400_000}


def _float32_space(space: gym.spaces.Box) -> gym.spaces.Box:
    return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)


def _episodes(recipe: Recipe) -> tuple[list[Episode], dict[str, Any]]:
    """The episodes of a recipe and its reference scores / algorithm name."""
    if recipe.family == "maze":
        from iql_tutorial.datasets.maze import collect_maze, maze_reference_scores

        refs = maze_reference_scores(recipe.env_key)
        eps = collect_maze(recipe.env_key, recipe.params["steps"], SEEDS["maze"], errands=MAZE_ERRANDS[recipe.env_key])
        return eps, {**refs, "algorithm_name": "noisy waypoint controller to random cells (D4RL maze2d recipe)"}
    env = SAC_ENVS[recipe.env_key]
    info = read_behaviour(env.key)
    refs = {"ref_min_score": info["ref_min_score"], "ref_max_score": info["ref_max_score"]}
    size = {"n_episodes": env.episodes} if env.episodes else {"n_steps": env.steps}
    kind = recipe.kind
    if kind == "random":
        seed = SEEDS["random"]
        eps = collect(env.env_id, lambda sp: uniform_policy(sp, seed), seed, desc=recipe.short, **size)
        return eps, {**refs, "algorithm_name": "uniform random policy"}
    if kind in ("medium", "expert"):
        seed = SEEDS[kind]
        path = behaviour_dir(env.key) / kind
        eps = collect(env.env_id, lambda sp: sac_policy(path, sp, seed), seed, desc=recipe.short, **size)
        return eps, {
            **refs,
            "algorithm_name": f"SAC ({kind} snapshot at {info[kind]['env_steps']} steps, sampled actions)",
        }
    if kind == "medium-replay":
        space = box(gym.make(env.env_id).action_space)
        eps = episodes_from_replay(load_replay(env.key), info["medium_replay_steps"], space)
        return eps, {**refs, "algorithm_name": f"SAC replay buffer (first {info['medium_replay_steps']} steps)"}
    if kind == "medium-expert":
        parts = []
        for k in ("medium", "expert"):
            dep = RECIPES[f"{NAMESPACE}/{env.key}/{k}-v0"]
            build(dep.dataset_id, force=False)
            parts += minari_io.read_episodes(dep.dataset_id)
        return parts, {**refs, "algorithm_name": "SAC medium + expert snapshots (sampled actions)"}
    raise ValueError(f"unknown kind {kind}")


def build(name: str, force: bool = False) -> str:
    """Build a dataset (skipped when already built, unless ``force``); returns its id."""
    recipe = resolve(name)
    if minari_io.is_built(recipe.dataset_id) and not force:
        return recipe.dataset_id
    import iql_tutorial.envs  # noqa: F401  (registers the navigation environments)

    episodes, meta = _episodes(recipe)
    env = gym.make(recipe.env_id)
    minari_io.write_dataset(
        recipe.dataset_id,
        episodes,
        recipe.env_id,
        observation_space=_float32_space(box(env.observation_space)),
        action_space=box(env.action_space),
        ref_min_score=meta["ref_min_score"],
        ref_max_score=meta["ref_max_score"],
        description=recipe.describe(),
        algorithm_name=meta["algorithm_name"],
        author=AUTHOR,
        force=True,
    )
    env.close()
    return recipe.dataset_id


def ensure_dataset(name: str) -> str:
    """The dataset's id, building it first if it is not on disk (for notebooks' first use)."""
    return build(name, force=False)


def buildable(recipe: Recipe) -> bool:
    """Whether this machine has what the recipe needs (behaviour policies, replay buffer)."""
    if recipe.family == "maze":
        return True
    d = behaviour_dir(recipe.env_key)
    if not (d / "behaviour.json").exists():
        return False
    if recipe.kind == "medium-replay":
        try:
            load_replay(recipe.env_key)
        except FileNotFoundError:
            return False
    return True


def table_rows() -> list[dict[str, Any]]:
    """One row per recipe: id, environment, size and reference scores (from disk where built)."""
    rows = []
    for r in RECIPES.values():
        row: dict[str, Any] = {"short": r.short, "id": r.dataset_id, "env": r.env_id, "episodes": None,
                               "transitions": None, "size_mb": None, "ref_min": None, "ref_max": None}  # fmt: skip
        why = minari_io.broken(r.dataset_id)
        if why:
            row["status"] = f"broken: {why} (rebuild: data build {r.short} --force)"
        elif minari_io.is_built(r.dataset_id):
            m = minari_io.metadata(r.dataset_id)
            row.update(episodes=m.get("total_episodes"), transitions=m.get("total_steps"),
                       size_mb=minari_io.size_on_disk(r.dataset_id) / 1e6, ref_min=m.get("ref_min_score"),
                       ref_max=m.get("ref_max_score"), status="built")  # fmt: skip
        else:
            if r.family == "sac" and (behaviour_dir(r.env_key) / "behaviour.json").exists():
                info = read_behaviour(r.env_key)
                row.update(ref_min=info["ref_min_score"], ref_max=info["ref_max_score"])
            row["status"] = "on demand" if buildable(r) else "missing inputs"
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`table_rows` as a fixed-width text table."""

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    head = f"{'id':36s} {'environment':34s} {'episodes':>8s} {'transitions':>11s} {'MB':>6s} {'ref_min':>9s} {'ref_max':>9s}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['id']:36s} {r['env']:34s} {f(r['episodes'], 'd'):>8s} {f(r['transitions'], 'd'):>11s} "
            f"{f(r['size_mb'], '.1f'):>6s} {f(r['ref_min'], '.1f'):>9s} {f(r['ref_max'], '.1f'):>9s}  {r['status']}"
        )
    return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`table_rows` as a Markdown table."""

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = ["| id | environment | episodes | transitions | MB | ref_min | ref_max | status |", "|---" * 8 + "|"]
    for r in rows:
        lines.append(
            f"| `{r['id']}` | {r['env']} | {f(r['episodes'], 'd')} | {f(r['transitions'], 'd')} | "
            f"{f(r['size_mb'], '.1f')} | {f(r['ref_min'], '.1f')} | {f(r['ref_max'], '.1f')} | {r['status']} |"
        )
    return "\n".join(lines)
