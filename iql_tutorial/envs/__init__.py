"""Environments of the project's own, registered with gymnasium on import.

- ``iql_tutorial/PointMaze-UMaze-v0``: a point in a U-shaped maze (5x5 cells), sparse reward 1
  at the goal (the episode terminates there), truncated after 300 steps.
- ``iql_tutorial/PointMaze-Medium-v0``: the same in D4RL's 8x8 "medium" maze, 300 steps.

Observations are the 2-D position ``[x, y]``; ``env.unwrapped.layout`` is the map (walls grid,
cell size, start and goal cells) for plotting.
"""

import gymnasium as gym

from iql_tutorial.envs.pointmaze import MAZES, MazeLayout, PointMazeEnv, WaypointController

MAX_EPISODE_STEPS = 300
ENV_IDS = {"umaze": "iql_tutorial/PointMaze-UMaze-v0", "medium": "iql_tutorial/PointMaze-Medium-v0"}

for _maze, _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point="iql_tutorial.envs.pointmaze:PointMazeEnv",
            kwargs={"maze": _maze},
            max_episode_steps=MAX_EPISODE_STEPS,
        )

__all__ = ["ENV_IDS", "MAZES", "MAX_EPISODE_STEPS", "MazeLayout", "PointMazeEnv", "WaypointController"]
