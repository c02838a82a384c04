"""`python -m iql_tutorial watch`: a tiny run's final policy rendered into a file with frames, and
each failure as one line (exit status 2). MuJoCo renders offscreen with MUJOCO_GL=egl."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
from helpers import REPO, minari_path, small_iql, train_config
from minari import create_dataset_from_buffers
from minari.data_collector import EpisodeBuffer

import iql_tutorial  # noqa: F401  (plugs the update runner into IQLAgent)
from iql_tutorial.runs.train import train
from iql_tutorial.viz import watch as watch_module
from iql_tutorial.viz.behaviour import (
    EnvInfo,
    Episode,
    env_info,
    frame_at,
    pendulum_angle,
    save_frames,
    video_frames,
    video_html,
)

ENV = "InvertedPendulum-v5"  # the cheapest MuJoCo task: a cart-pole whose episodes end when the pole falls


def _make_dataset(dataset_id: str, episodes: int = 3, max_steps: int = 30) -> None:
    env = gym.make(ENV, max_episode_steps=max_steps)
    rng = np.random.default_rng(0)
    buffers = []
    for i in range(episodes):
        obs, _ = env.reset(seed=i)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done:
            act = rng.uniform(-3, 3, size=1).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            o += [obs]
            a += [act]
            r += [rew]
            te += [term]
            tr += [trunc]
            done = term or trunc
        buffers.append(EpisodeBuffer(id=i, observations=np.array(o), actions=np.array(a), rewards=np.array(r),
                                     terminations=np.array(te), truncations=np.array(tr), infos={}))  # fmt: skip
    create_dataset_from_buffers(dataset_id, buffers, env=env, eval_env=env.spec, algorithm_name="random",
                                author="tests", author_email="tests@example.invalid", code_permalink="tests/test_watch.py",
                                description="tiny MuJoCo test data", ref_min_score=0.0, ref_max_score=1000.0)  # fmt: skip


@pytest.fixture(scope="module")
def mujoco_run(tmp_path_factory):
    """A 20-step run on tiny InvertedPendulum data, and the datasets folder it reads."""
    root = tmp_path_factory.mktemp("minari-mujoco")
    out = tmp_path_factory.mktemp("watch") / "run"
    with minari_path(root):
        _make_dataset("tests/invertedpendulum/tiny-v0")
        train(train_config(out, dataset="tests/invertedpendulum/tiny-v0", steps=20, eval_episodes=0, log_every=10,
                           val_fraction=0.0, iql=small_iql()), progress=False)  # fmt: skip
    return root, out


@pytest.fixture()
def egl(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))


def test_watch_writes_a_gif_and_an_mp4_with_frames(mujoco_run, egl, tmp_path, capsys):
    root, run = mujoco_run
    with minari_path(root):
        assert watch_module.main([str(run), "--episodes", "2", "--every", "2", "--out", str(tmp_path / "w.gif")]) == 0
        out = capsys.readouterr().out
        assert out.count("normalized score") == 2 and "episode 2 (seed 1)" in out, out
        gif = imageio.mimread(tmp_path / "w.gif")
        assert len(gif) >= 4 and gif[0].shape[:2] == (240 + 32, 240), (len(gif), gif[0].shape)
        assert np.ptp(np.asarray(gif[0], dtype=float)) > 0  # a rendered picture, not a blank frame
        assert watch_module.main([str(run), "--every", "3", "--size", "96", "--out", str(tmp_path / "w.mp4")]) == 0
        with imageio.get_reader(tmp_path / "w.mp4") as reader:
            assert reader.count_frames() >= 2
            assert reader.get_data(0).shape[:2] == (96 + 32, 96)


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_watch_errors_are_one_line(mujoco_run, egl, tmp_path, capsys, monkeypatch):
    root, run = mujoco_run
    with minari_path(root):
        # a run folder with no checkpoint
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "run.json").write_text("{}")
        line = _one_line_error(watch_module.main([str(tmp_path / "empty")]), capsys.readouterr().err)
        assert "has no checkpoint.pt" in line, line
        # an unknown suffix, refused before any work
        line = _one_line_error(watch_module.main([str(run), "--out", str(tmp_path / "w.avi")]), capsys.readouterr().err)
        assert "unknown suffix '.avi'; use .mp4 or .gif" in line, line
        # an environment that cannot render frames (render() gives None: no rgb_array mode)
        real = env_info("tests/invertedpendulum/tiny-v0")
        blind = EnvInfo(real.dataset_id, lambda **kw: gym.make(ENV), real.low, real.high, 0.0, 1000.0)
        monkeypatch.setattr(watch_module, "env_info", lambda dataset_id: blind)
        line = _one_line_error(watch_module.main([str(run), "--out", str(tmp_path / "w.gif")]), capsys.readouterr().err)
        assert "cannot render frames" in line, line


def test_watch_without_a_rendering_backend_says_which_mujoco_gl_to_set(mujoco_run, tmp_path):
    """A fresh process: MuJoCo reads MUJOCO_GL once, when it is first imported."""
    root, run = mujoco_run
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root), "MUJOCO_GL": "no-such-backend", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "iql_tutorial", "watch", str(run), "--out", str(tmp_path / "w.gif")],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    line = _one_line_error(proc.returncode, proc.stderr)
    assert "no rendering backend: MUJOCO_GL=no-such-backend failed" in line and "set MUJOCO_GL=egl" in line, line


def _episode(label: str, n_frames: int, length: int, value: int) -> Episode:
    frames = np.full((n_frames, 16, 16, 3), value, dtype=np.uint8)
    return Episode(label, 10.0, 50.0, length, frames, np.arange(n_frames) * 8)


def test_frames_filmstrip_steps_and_side_by_side_video_frames():
    ep = _episode("IQL", 3, 20, 100)  # frames at steps 0, 8, 16 of a 20-step episode
    ep.frames[1] = 7
    assert frame_at(ep, 10)[0, 0, 0] == 7  # the last frame rendered at or before step 10
    assert frame_at(ep, 20) is not None and frame_at(ep, 21) is None  # after its end: nothing
    assert ep.title == "IQL: score 50.0"
    frames = video_frames([ep, _episode("BC", 5, 36, 200)])
    assert len(frames) == 5 and frames[0].shape == (16 + 32, 32, 3)
    # the shorter episode holds its last frame, greyed (lighter), while the other goes on
    assert frames[4][32 + 5, 5, 0] > 100 and frames[4][32 + 5, 16 + 5, 0] == 200


def test_video_html_embeds_the_file_with_a_text_alternative(tmp_path):
    frames = [np.full((32, 48, 3), 30 * i, dtype=np.uint8) for i in range(4)]
    mp4, gif = save_frames(frames, tmp_path / "c.mp4", fps=4), save_frames(frames, tmp_path / "c.gif", fps=4)
    with imageio.get_reader(mp4) as reader:
        assert reader.count_frames() == 4
    assert len(imageio.mimread(gif)) == 4
    page = video_html(mp4, alt='IQL hops, "BC" falls', poster=gif)
    assert page.startswith("<video") and 'src="data:video/mp4;base64,' in page and 'poster="data:image/gif' in page
    assert 'aria-label="IQL hops, &quot;BC&quot; falls"' in page and "max-width: 100%" in page
    linked = video_html(mp4, alt="a clip", embed=False)
    assert f'src="{mp4.as_posix()}"' in linked and "base64" not in linked
    assert video_html(gif, alt="a clip").startswith('<img src="data:image/gif;base64,')
    with pytest.raises(ValueError, match="unknown video suffix '.avi'"):
        save_frames(frames, tmp_path / "c.avi")


def test_pendulum_angle_is_zero_upright():
    theta = np.array([0.0, 0.3, -2.0, np.pi])
    obs = np.stack([np.cos(theta), np.sin(theta), np.zeros(4)], axis=1)
    np.testing.assert_allclose(np.abs(pendulum_angle(obs)), np.abs(theta), atol=1e-12)


def test_typical_start_is_the_start_closest_to_every_policys_median():
    from iql_tutorial.viz.behaviour import typical_start

    # policy 0 scores 100 or -15 (median 100), policy 1 about -5 (median -5): start 13 is typical for both
    scores = np.array([[-15.0, 14.0], [100.0, 30.0], [100.0, -50.0], [100.0, -5.0], [-15.0, -5.0]])
    assert typical_start(scores, [10, 11, 12, 13, 14]) == 13
