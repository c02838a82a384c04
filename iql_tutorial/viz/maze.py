"""Drawing the point mazes: walls, start and goal over any map, and the grids a value map is drawn on.

One function for every maze figure of the book (chapters 2 and 4, the dataset card), so a chapter
calls ``draw_maze(ax, layout)`` after drawing its own layer (a value map, a scatter of states,
arrows) and gets the same walls, labels and axes everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from iql_tutorial.envs.pointmaze import MazeLayout, PointMazeEnv

#: colour of the walls drawn over a map (a dark grey that reads on light and dark colour maps)
WALL_COLOR = "0.3"


def draw_maze(
    ax: Axes,
    layout: MazeLayout,
    *,
    labels: bool = True,
    fontsize: float = 12,
    axis_labels: bool = True,
) -> Axes:
    """Draw the walls of ``layout`` over whatever ``ax`` holds, mark the start S and goal G, set the limits.

    The walls are drawn on top (``zorder=3``) so a value map or a scatter drawn before stays
    behind them; free cells stay transparent. Coordinates are the maze's: cell ``(row, col)``
    covers ``x in [col, col + 1]`` and ``y in [row, row + 1]``.
    """
    from matplotlib.colors import ListedColormap

    walls = np.ma.masked_where(~layout.walls, np.ones(layout.shape))
    ax.imshow(
        walls,
        origin="lower",
        extent=layout.extent,
        cmap=ListedColormap([WALL_COLOR]),
        vmin=0,
        vmax=1,
        zorder=3,
        interpolation="nearest",
    )
    if labels:
        for cell, name in ((layout.start, "S"), (layout.goal, "G")):
            x, y = layout.cell_center(cell)
            ax.text(
                x,
                y,
                name,
                ha="center",
                va="center",
                fontsize=fontsize,
                weight="bold",
                color="w",
                zorder=4,
                bbox={"boxstyle": "circle", "fc": "k", "alpha": 0.6},
            )
    ax.set(xlim=layout.extent[:2], ylim=layout.extent[2:], aspect="equal")
    if axis_labels:
        ax.set(xlabel="$x$", ylabel="$y$")
    return ax


def maze_grid(layout: MazeLayout, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``resolution x resolution`` grid of positions over the whole maze, for drawing a function of the state.

    Returns ``points [resolution**2, 2]`` (float32, ``[x, y]`` rows, row-major with y as the slow
    axis, so ``values.reshape(resolution, resolution)`` is an image for ``imshow(origin="lower")``)
    and ``wall [resolution, resolution]`` (True where the position lies in a wall cell), and
    ``extent`` for ``imshow``.
    """
    x_min, x_max, y_min, y_max = layout.extent
    xs = np.linspace(x_min, x_max, resolution)
    ys = np.linspace(y_min, y_max, resolution)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    rows = (gy // layout.cell_size).astype(int).clip(0, layout.shape[0] - 1)
    cols = (gx // layout.cell_size).astype(int).clip(0, layout.shape[1] - 1)
    return points, layout.walls[rows, cols], np.asarray(layout.extent)


def optimal_value_lattice(
    env: PointMazeEnv, gamma: float, spacing: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The optimal value ``V*(s) = gamma^(n(s) - 1)`` of the sparse goal reward (r = 1 at the goal, terminal).

    ``n(s)`` is the fewest steps that bring the point within ``env.goal_radius`` of the goal,
    found by a breadth-first search outward from the goal on a lattice of the given spacing: one
    step moves the point by up to ``env.max_step`` along each axis, so it reaches every lattice
    node in a square of that half-width. Positions inside the goal's radius get ``1``.

    Returns the lattice coordinates ``x [nx]``, ``y [ny]`` and ``V* [ny, nx]``, NaN where the
    point cannot be (in a wall or closer than ``env.radius`` to one).
    """
    layout = env.layout
    lx = np.arange(spacing / 2, layout.extent[1], spacing)
    ly = np.arange(spacing / 2, layout.extent[3], spacing)
    gx, gy = np.meshgrid(lx, ly)
    free = np.ones(gx.shape, dtype=bool)
    for dx in (-env.radius, env.radius):
        for dy in (-env.radius, env.radius):
            rows = ((gy + dy) // layout.cell_size).astype(int).clip(0, layout.shape[0] - 1)
            cols = ((gx + dx) // layout.cell_size).astype(int).clip(0, layout.shape[1] - 1)
            free &= ~layout.walls[rows, cols]
    in_goal = free & (np.hypot(gx - env.goal_pos[0], gy - env.goal_pos[1]) <= env.goal_radius)
    steps = np.where(in_goal, 0.0, np.inf)
    reach = int(round(env.max_step / spacing))
    for k in range(1, 100_000):
        reached = np.pad(np.isfinite(steps), reach)
        grown = np.zeros(steps.shape, dtype=bool)
        for i in range(2 * reach + 1):
            for j in range(2 * reach + 1):
                grown |= reached[i : i + steps.shape[0], j : j + steps.shape[1]]
        new = grown & free & ~np.isfinite(steps)
        if not new.any():
            break
        steps[new] = k
    v_star = np.where(in_goal, 1.0, gamma ** (steps - 1))
    return lx, ly, np.where(free, v_star, np.nan)


def lattice_value_at(lx: np.ndarray, ly: np.ndarray, values: np.ndarray, pos: Any) -> float:
    """The value of the lattice node nearest to ``pos = [x, y]``."""
    return float(values[np.abs(ly - pos[1]).argmin(), np.abs(lx - pos[0]).argmin()])
