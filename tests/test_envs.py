"""The point maze: walls block, the goal terminates, the time limit truncates, the map is exposed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from iql_tutorial.envs import ENV_IDS, MAX_EPISODE_STEPS, MazeLayout, PointMazeEnv, WaypointController


@pytest.fixture(params=sorted(ENV_IDS))
def env(request):
    e = gym.make(ENV_IDS[request.param])
    yield e
    e.close()


def test_registered_with_2d_position_observations(env):
    obs, info = env.reset(seed=0)
    assert obs.shape == (2,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert env.action_space.shape == (2,) and np.all(env.action_space.high == 1.0)
    layout = env.unwrapped.layout
    assert layout.cell_of(obs) == layout.start
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS


def test_layout_geometry():
    lay = MazeLayout.from_strings(("###", "#G#", "#S#", "###"))
    assert lay.shape == (4, 3) and lay.start == (1, 1) and lay.goal == (2, 1)  # row 0 is the bottom
    assert lay.extent == (0.0, 3.0, 0.0, 4.0)
    assert np.allclose(lay.cell_center((2, 1)), [1.5, 2.5])
    assert lay.cell_of(np.array([1.2, 2.9])) == (2, 1)
    assert lay.distances_to(lay.goal)[lay.start] == 1
    with pytest.raises(ValueError, match="start cell"):
        MazeLayout.from_strings(("###", "#.#", "###"))


def test_walls_block_and_keep_a_margin(env):
    inner = env.unwrapped
    env.reset(seed=0)
    start = inner.layout.start
    for action in ([-1.0, 0.0], [0.0, -1.0], [-1.0, -1.0]):  # the start cells' left and lower sides are walls
        env.reset(seed=0)
        for _ in range(30):
            obs, *_ = env.step(np.array(action, dtype=np.float32))
        assert inner.layout.cell_of(obs) == start
        x0, y0 = inner.layout.cell_center(start) - 0.5
        assert obs[0] >= x0 + inner.radius - 1e-5 and obs[1] >= y0 + inner.radius - 1e-5


def test_sliding_along_a_wall():
    e = PointMazeEnv("umaze")
    e.reset(seed=0)
    y_before = e.pos[1]
    for _ in range(5):
        e.step(np.array([0.5, -1.0]))  # into the floor and to the right: slides right
    assert e.pos[0] > e.layout.cell_center(e.layout.start)[0] + 0.2 and e.pos[1] <= y_before


def test_random_actions_never_enter_a_wall(env):
    inner = env.unwrapped
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    for _ in range(3000):
        obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        assert not inner._hits_wall(float(inner.pos[0]), float(inner.pos[1]))
        if term or trunc:
            env.reset(seed=int(rng.integers(1000)))


def test_goal_terminates_with_reward_one(env):
    inner = env.unwrapped
    ctl = WaypointController(inner.layout)
    ctl.set_target(inner.layout.goal)
    obs, _ = env.reset(seed=0)
    rewards = []
    for _ in range(MAX_EPISODE_STEPS):
        obs, r, term, trunc, info = env.step(ctl(obs.astype(np.float64)))
        rewards.append(r)
        if term or trunc:
            break
    assert term and not trunc and info["success"]
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0
    assert np.linalg.norm(obs - inner.goal_pos) <= inner.goal_radius + 1e-6


def test_time_limit_truncates(env):
    env.reset(seed=0)
    steps, term, trunc = 0, False, False
    while not (term or trunc):
        _, r, term, trunc, _ = env.step(np.zeros(2, dtype=np.float32))
        steps += 1
    assert steps == MAX_EPISODE_STEPS and trunc and not term and r == 0.0


def test_until_cell_truncates_on_arrival():
    e = PointMazeEnv("medium")
    target = (1, 3)
    e.reset(seed=0, options={"until_cell": target})
    ctl = WaypointController(e.layout)
    ctl.set_target(target)
    for _ in range(200):
        obs, r, term, trunc, _ = e.step(ctl(e.pos))
        if term or trunc:
            break
    assert trunc and not term and r == 0.0
    with pytest.raises(ValueError, match="wall"):
        e.reset(options={"cell": (0, 0)})


def test_controller_reaches_the_goal_from_every_cell():
    e = PointMazeEnv("medium")
    ctl = WaypointController(e.layout)
    ctl.set_target(e.layout.goal)
    for cell in e.layout.free_cells():
        if cell == e.layout.goal:
            continue
        e.reset(seed=0, options={"cell": cell})
        for _ in range(MAX_EPISODE_STEPS):
            _, _, term, _, _ = e.step(ctl(e.pos))
            if term:
                break
        assert term, f"the controller did not reach the goal from {cell}"


def test_render_and_unknown_maze():
    e = PointMazeEnv("umaze", render_mode="rgb_array")
    e.reset(seed=0)
    img = e.render()
    assert img.shape == (100, 100, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match="Unknown maze"):
        PointMazeEnv("nope")
