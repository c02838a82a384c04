"""The navigation datasets: a noisy waypoint controller on errands between *random* cells.

Each episode is a few errands, D4RL maze2d style but cut into pieces: it starts in a random free
cell and a noisy waypoint controller (BFS over the cell grid + a P controller, Gaussian action
noise) drives to a random cell, then another, then another; the environment truncates the
episode on arrival at the last one (``reset(options={"until_cell": ...})``) or at its time limit. The environment's reward is the
evaluation task's: 1 on reaching the fixed goal, where the episode terminates. Once an episode has
been at the start cell, the goal is never one of its targets, so a policy that does has to be stitched together from pieces
of several episodes - the situation where IQL's value learning beats behaviour cloning.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from iql_tutorial.datasets.minari_io import Episode
from iql_tutorial.datasets.rollouts import episode_return, rollout
from iql_tutorial.envs import ENV_IDS, MazeLayout, WaypointController
from iql_tutorial.utils import box

ARRIVAL_RADIUS = 0.5  # the controller moves on to its next target within this distance of a cell centre


def plan_errands(layout: MazeLayout, rng: np.random.Generator, n: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """A random start cell (not the goal) and ``n`` random targets, each differing from the previous.

    The goal is never a target once the start cell has been the start or a target: no episode is
    aimed from the evaluation start to the goal.
    """
    cells = layout.free_cells()
    start = cells[rng.integers(len(cells))]
    while start == layout.goal:
        start = cells[rng.integers(len(cells))]
    targets: list[tuple[int, int]] = []
    seen_start = start == layout.start
    here = start
    for _ in range(n):
        choices = [c for c in cells if c != here and not (seen_start and c == layout.goal)]
        here = choices[rng.integers(len(choices))]
        targets.append(here)
        seen_start = seen_start or here == layout.start
    return start, targets


def collect_maze(maze: str, n_steps: int, seed: int, noise: float = 0.5, errands: int = 3) -> list[Episode]:
    """Whole episodes of ``errands`` errands each (random start, random targets) until at least
    ``n_steps`` transitions; the episode is truncated on arrival at its last target."""
    env = gym.make(ENV_IDS[maze])
    inner: Any = env.unwrapped  # the point maze of iql_tutorial.envs
    layout = inner.layout
    rng = np.random.default_rng(seed)
    ctl = WaypointController(layout, noise=noise)
    episodes: list[Episode] = []
    steps = 0
    bar = tqdm(total=n_steps, desc=f"collect {ENV_IDS[maze]}", unit="step", mininterval=1.0)
    while steps < n_steps:
        start, targets = plan_errands(layout, rng, errands)
        queue = list(targets)
        ctl.set_target(queue.pop(0))

        def policy(obs: np.ndarray, queue: list[tuple[int, int]] = queue) -> np.ndarray:
            pos = obs.astype(np.float64)
            if queue and np.linalg.norm(pos - layout.cell_center(ctl.target)) <= ARRIVAL_RADIUS:
                ctl.set_target(queue.pop(0))
                if not queue:  # the last errand: the environment truncates on arrival
                    inner.set_until_cell(ctl.target)
            return ctl(pos, rng)

        ep = rollout(
            env,
            policy,
            seed + len(episodes),
            options={"cell": start, "until_cell": targets[0] if len(targets) == 1 else None},
        )
        episodes.append(ep)
        steps += len(ep["actions"])
        bar.update(len(ep["actions"]))
    bar.close()
    env.close()
    return episodes


def maze_reference_scores(maze: str, episodes: int = 100, seed: int = 54321) -> dict[str, float]:
    """ref_min: uniform random actions; ref_max: the noise-free controller aimed at the goal.

    Both start at the evaluation start cell. With a 0/1 terminating reward, a return is a
    success, so the normalized score is the success rate in percent.
    """
    env = gym.make(ENV_IDS[maze])
    inner: Any = env.unwrapped
    layout = inner.layout
    ctl = WaypointController(layout, noise=0.0)
    ctl.set_target(layout.goal)
    rng = np.random.default_rng(seed)
    space = box(env.action_space)
    rand = [episode_return(rollout(env, lambda o: rng.uniform(space.low, space.high).astype(np.float32), seed + i))
            for i in range(episodes)]  # fmt: skip
    expert = [episode_return(rollout(env, lambda o: ctl(o.astype(np.float64)), seed + i)) for i in range(episodes)]
    env.close()
    return {"ref_min_score": float(np.mean(rand)), "ref_max_score": float(np.mean(expert)), "episodes": episodes}
