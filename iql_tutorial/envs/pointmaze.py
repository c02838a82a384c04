"""A sparse-reward point in a 2-D maze: small, fast (pure numpy) and easy to draw.

The maze is a grid of unit cells (``#`` wall, ``.`` free, ``S`` start, ``G`` goal). Cell
``(row, col)`` covers ``x in [col, col + 1]``, ``y in [row, row + 1]``: row 0 is at the bottom
of a plot drawn with ``origin="lower"``. The observation is the position ``[x, y]``, so any
function of the state (V(s), the policy) can be drawn over the map.

- action: a velocity in [-1, 1]^2; the point moves by ``max_step * action`` per step and slides
  along walls (it keeps a margin of ``radius`` from them).
- reward: 1 when the point comes within ``goal_radius`` of the goal cell's centre, and the
  episode *terminates* there; 0 otherwise.
- truncation: after ``max_episode_steps`` (gymnasium's TimeLimit).
- reset: at the start cell's centre plus uniform noise of +-``reset_noise``. A data collector may
  pass ``options={"cell": (row, col)}`` to start elsewhere, and ``"until_cell": (row, col)`` (or
  call :meth:`PointMazeEnv.set_until_cell` during the episode) to have the episode *truncated* on
  arrival within ``goal_radius`` of that cell's centre; reaching the goal on the way still
  terminates it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

UMAZE = (
    "#####",
    "#G..#",
    "###.#",
    "#S..#",
    "#####",
)

MEDIUM_MAZE = (
    "########",
    "#..##..#",
    "#..#..G#",
    "##...###",
    "#..#...#",
    "#.#..#.#",
    "#S..#..#",
    "########",
)

MAZES = {"umaze": UMAZE, "medium": MEDIUM_MAZE}


@dataclass(frozen=True)
class MazeLayout:
    """The map of a maze: what plotting code and the waypoint controller need.

    ``walls[row, col]`` is True for a wall cell; rows are listed bottom-up (row 0 at y in [0, 1]).
    """

    walls: np.ndarray
    start: tuple[int, int]
    goal: tuple[int, int]
    cell_size: float = 1.0

    @classmethod
    def from_strings(cls, rows: tuple[str, ...]) -> MazeLayout:
        """Parse a maze drawn top row first (as it reads on screen)."""
        grid = [list(r) for r in reversed(rows)]  # row 0 = bottom
        walls = np.array([[ch == "#" for ch in r] for r in grid], dtype=bool)
        find = {ch: (i, j) for i, r in enumerate(grid) for j, c in enumerate(r) for ch in "SG" if c == ch}
        if "S" not in find or "G" not in find:
            raise ValueError("A maze needs one start cell 'S' and one goal cell 'G'.")
        return cls(walls=walls, start=find["S"], goal=find["G"])

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape  # (rows, cols)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` for ``plt.imshow(walls, origin="lower", extent=...)``."""
        return (0.0, self.shape[1] * self.cell_size, 0.0, self.shape[0] * self.cell_size)

    def cell_center(self, cell: tuple[int, int]) -> np.ndarray:
        """``[x, y]`` of a cell's centre."""
        return (np.array([cell[1], cell[0]], dtype=np.float64) + 0.5) * self.cell_size

    def cell_of(self, pos: np.ndarray) -> tuple[int, int]:
        """The ``(row, col)`` holding the point ``[x, y]``."""
        return int(pos[1] // self.cell_size), int(pos[0] // self.cell_size)

    def free_cells(self) -> list[tuple[int, int]]:
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(~self.walls), strict=True)]

    def distances_to(self, target: tuple[int, int]) -> np.ndarray:
        """Shortest path length (in cells, 4-connected) from every cell to ``target``; inf for walls."""
        dist = np.full(self.shape, np.inf)
        dist[target] = 0
        q = deque([target])
        while q:
            i, j = q.popleft()
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                n = (i + di, j + dj)
                if not self.walls[n] and dist[n] == np.inf:
                    dist[n] = dist[i, j] + 1
                    q.append(n)
        return dist


class PointMazeEnv(gym.Env):
    """A point that moves by bounded steps in a maze; sparse reward at a fixed goal."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        maze: str = "umaze",
        max_step: float = 0.1,
        radius: float = 0.1,
        goal_radius: float = 0.5,
        reset_noise: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        if maze not in MAZES:
            raise ValueError(f"Unknown maze '{maze}'; choose one of {sorted(MAZES)}.")
        self.maze_name = maze
        self.layout = MazeLayout.from_strings(MAZES[maze])
        self.max_step, self.radius, self.goal_radius, self.reset_noise = max_step, radius, goal_radius, reset_noise
        self.goal_pos = self.layout.cell_center(self.layout.goal)
        rows, cols = self.layout.shape
        high = np.array([cols, rows], dtype=np.float32) * self.layout.cell_size
        self.observation_space = gym.spaces.Box(np.zeros(2, np.float32), high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.render_mode = render_mode
        self.pos = self.layout.cell_center(self.layout.start)
        self.until_pos: np.ndarray | None = None

    # -- dynamics ---------------------------------------------------------------------------
    def _hits_wall(self, x: float, y: float) -> bool:
        """True when the square of half-width ``radius`` around (x, y) overlaps a wall cell."""
        s, r = self.layout.cell_size, self.radius
        rows = range(int((y - r) // s), int((y + r) // s) + 1)
        cols = range(int((x - r) // s), int((x + r) // s) + 1)
        return any(self.layout.walls[i, j] for i in rows for j in cols)

    def move(self, pos: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Next position: one axis at a time, stopping at ``radius`` from a wall (so it slides)."""
        s, r = self.layout.cell_size, self.radius
        d = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * self.max_step
        x, y = float(pos[0]), float(pos[1])
        nx = x + d[0]
        if self._hits_wall(nx, y):
            nx = (np.floor((x + r) / s + 1) * s - r - 1e-6) if d[0] > 0 else (np.floor((x - r) / s) * s + r + 1e-6)
        ny = y + d[1]
        if self._hits_wall(nx, ny):
            ny = (np.floor((y + r) / s + 1) * s - r - 1e-6) if d[1] > 0 else (np.floor((y - r) / s) * s + r + 1e-6)
        return np.array([nx, ny])

    def reached_goal(self, pos: np.ndarray) -> bool:
        return bool(np.linalg.norm(np.asarray(pos) - self.goal_pos) <= self.goal_radius)

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        cell = tuple((options or {}).get("cell", self.layout.start))
        if self.layout.walls[cell]:
            raise ValueError(f"reset cell {cell} is a wall.")
        noise = self.np_random.uniform(-self.reset_noise, self.reset_noise, size=2)
        self.pos = self.layout.cell_center(cell) + noise
        self.set_until_cell((options or {}).get("until_cell"))
        return self.pos.astype(np.float32), {"success": False}

    def set_until_cell(self, cell: tuple[int, int] | None) -> None:
        """Truncate the episode on arrival at ``cell`` (None: only the time limit truncates)."""
        self.until_pos = None if cell is None else self.layout.cell_center((int(cell[0]), int(cell[1])))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.pos = self.move(self.pos, action)
        success = self.reached_goal(self.pos)
        arrived = self.until_pos is not None and bool(np.linalg.norm(self.pos - self.until_pos) <= self.goal_radius)
        return self.pos.astype(np.float32), float(success), success, arrived and not success, {"success": success}

    def render(self) -> np.ndarray | None:
        """A small RGB image: walls dark, goal green, the point red (rows flipped for display)."""
        if self.render_mode != "rgb_array":
            return None
        k = 20
        img = np.where(self.layout.walls[..., None], 60, 235).astype(np.uint8).repeat(3, axis=2)
        img = img.repeat(k, 0).repeat(k, 1)
        for p, color in ((self.goal_pos, (40, 170, 40)), (self.pos, (200, 30, 30))):
            c, rr = (np.asarray(p) * k / self.layout.cell_size).astype(int), 4
            img[max(c[1] - rr, 0) : c[1] + rr, max(c[0] - rr, 0) : c[0] + rr] = color
        return img[::-1].copy()


class WaypointController:
    """Drives the point to a target cell along a shortest path on the cell grid.

    At each step the next waypoint is the neighbouring cell that is closer to the target (BFS
    distances, the grid version of D4RL's Q-iteration planner) - or the target's centre once in
    the target cell - and the action is a P controller towards it, ``clip(gain * (w - pos))``,
    plus Gaussian noise of std ``noise`` (clipped to [-1, 1]).
    """

    def __init__(self, layout: MazeLayout, gain: float = 5.0, noise: float = 0.0) -> None:
        self.layout, self.gain, self.noise = layout, gain, noise
        self._dist: dict[tuple[int, int], np.ndarray] = {}
        self.target: tuple[int, int] = layout.goal

    def set_target(self, cell: tuple[int, int]) -> None:
        self.target = (int(cell[0]), int(cell[1]))
        if self.target not in self._dist:
            self._dist[self.target] = self.layout.distances_to(self.target)

    def waypoint(self, pos: np.ndarray) -> np.ndarray:
        if self.target not in self._dist:
            self.set_target(self.target)
        dist = self._dist[self.target]
        i, j = self.layout.cell_of(pos)
        if (i, j) == self.target or not np.isfinite(dist[i, j]):
            return self.layout.cell_center(self.target)
        best = min(((i + di, j + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))), key=lambda n: dist[n])
        return self.layout.cell_center(best)

    def __call__(self, pos: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        a = np.clip(self.gain * (self.waypoint(pos) - pos), -1.0, 1.0)
        if self.noise > 0:
            if rng is None:
                raise ValueError("A noisy controller needs an rng.")
            a = np.clip(a + rng.normal(0.0, self.noise, size=2), -1.0, 1.0)
        return a.astype(np.float32)
