"""Reward normalisation: the locomotion scale by hand and its zero-spread error, the maze preset
(expectile 0.9, beta 10, rewards shifted by -1), and fine-tuning's online rewards transformed
exactly like the offline ones."""

from functools import partial

import gymnasium as gym
import helpers
import minari
import numpy as np
import pytest
import torch
from helpers import minari_path, small_iql

from iql_tutorial.data import OfflineDataset, load_dataset, reward_normalization
from iql_tutorial.runs.finetune import finetune
from iql_tutorial.runs.train import preset_for, train

torch.set_num_threads(1)
PENDULUM = "tests/pendulum/tiny-v0"  # 3 random episodes of 50 steps
SHORT = "tests/pendulum/short-v0"  # 2 random episodes of 30 steps
MAZE = "tests/pointmaze/tiny-v0"  # U-maze: one episode reaches the goal, two random ones of 40 steps


# no IQL settings unless a test gives them: the dataset's preset decides (and its reward normalisation)
train_config = partial(helpers.train_config, steps=4, eval_episodes=0, log_every=2, checkpoint_every=4)
ft_config = partial(helpers.ft_config, eval_episodes=0, log_every=15)


def raw_episodes(dataset_id: str) -> list:
    """The dataset's episodes as Minari stores them (no normalisation)."""
    return list(minari.load_dataset(dataset_id).iterate_episodes())


def test_reward_normalization_by_hand():
    returns = np.array([-300.0, -100.0, -50.0, -260.0])
    scale, shift = reward_normalization(returns, "locomotion")
    assert scale == pytest.approx(1000.0 / 250.0) and shift == 0.0  # 1000 / (-50 - (-300))
    assert reward_normalization(np.array([2.0, 10.0]), "locomotion") == (pytest.approx(125.0), 0.0)
    assert reward_normalization(returns, "shift") == (1.0, -1.0)
    assert reward_normalization(returns, "none") == (1.0, 0.0)
    with pytest.raises(ValueError, match="unknown"):
        reward_normalization(returns, "minmax")


@pytest.mark.parametrize(
    "returns",
    [np.array([5.0, 5.0, 5.0]), np.array([7.0]), np.zeros(0), np.array([1.0, np.nan]), np.array([0.0, np.inf])],
    ids=["equal", "one", "none", "nan", "inf"],
)
def test_locomotion_scale_needs_a_finite_nonzero_spread(returns):
    with pytest.raises(ValueError, match="spread"):
        reward_normalization(returns, "locomotion")


def test_locomotion_scale_on_a_dataset(tiny_minari):
    eps = raw_episodes(PENDULUM)
    rets = np.array([e.rewards.astype(np.float64).sum() for e in eps])
    raw = np.concatenate([e.rewards for e in eps]).astype(np.float64)
    scale = 1000.0 / (rets.max() - rets.min())
    d = load_dataset(PENDULUM, reward_norm="locomotion")
    assert d.reward_scale == pytest.approx(scale, rel=1e-6) and d.reward_shift == 0.0  # float32 rewards
    got = d.transitions.rewards.double().reshape(-1).numpy()
    np.testing.assert_allclose(got, raw * scale, rtol=1e-6)
    scaled = np.array([g.sum() for g in np.split(got, np.cumsum([len(e.rewards) for e in eps])[:-1])])
    assert scaled.max() - scaled.min() == pytest.approx(1000.0, rel=1e-5)  # the returns now span 1000
    plain = load_dataset(PENDULUM, reward_norm="none")
    assert plain.reward_scale == 1.0 and plain.reward_shift == 0.0
    np.testing.assert_array_equal(plain.transitions.rewards.reshape(-1).numpy(), raw.astype(np.float32))


def test_locomotion_scale_refuses_a_dataset_whose_returns_do_not_spread(tmp_path):
    from _tiny_data import make_pendulum_dataset

    with minari_path(tmp_path / "minari"):
        make_pendulum_dataset("tests/pendulum/one-v0", episodes=1)  # one episode: a spread of 0
        with pytest.raises(ValueError, match="spread of 0"):
            load_dataset("tests/pendulum/one-v0", reward_norm="locomotion")
        with pytest.raises(ValueError, match="reward_norm='none'"):  # the locomotion preset of a non-maze id
            train(train_config(tmp_path / "run", dataset="tests/pendulum/one-v0"), progress=False)
        assert len(load_dataset("tests/pendulum/one-v0", reward_norm="none").transitions) == 50


def test_maze_preset_is_expectile_09_beta_10_and_shifted_rewards(tiny_minari, tmp_path):
    maze = {"expectile": 0.9, "beta": 10.0, "reward_norm": "shift"}
    assert preset_for("iqlbook/pointmaze/umaze-v0") == maze
    assert preset_for("D4RL/AntMaze/umaze-v1") == maze  # any id naming a maze, any case
    assert preset_for("iqlbook/pendulum/medium-v0") == {"expectile": 0.7, "beta": 3.0, "reward_norm": "locomotion"}

    result = train(train_config(tmp_path / "maze", dataset=MAZE), progress=False)  # no IQL settings: the preset
    assert result.agent.config.expectile == 0.9 and result.agent.config.beta == 10.0
    d = result.dataset
    assert d.reward_scale == 1.0 and d.reward_shift == -1.0
    raw = np.concatenate([e.rewards for e in raw_episodes(MAZE)]).astype(np.float32)
    assert raw.max() == 1.0  # one episode reached the goal
    np.testing.assert_array_equal(d.transitions.rewards.reshape(-1).numpy(), raw - 1.0)  # sparse 0/1 -> -1/0
    other = train(train_config(tmp_path / "pendulum", dataset=PENDULUM), progress=False)
    assert other.agent.config.expectile == 0.7 and other.agent.config.beta == 3.0
    assert other.dataset.reward_shift == 0.0 and other.dataset.reward_scale != 1.0


class RecordSteps(gym.Wrapper):
    """Keeps every (raw reward, next observation) the environment returns."""

    def __init__(self, env: gym.Env, record: list) -> None:
        super().__init__(env)
        self.record = record

    def step(self, action):
        out = self.env.step(action)
        self.record.append((float(out[1]), np.asarray(out[0], dtype=np.float32).copy()))
        return out


@pytest.mark.parametrize("dataset_id", [SHORT, MAZE])
def test_online_rewards_are_env_rewards_times_scale_plus_shift(tiny_minari, tmp_path, monkeypatch, dataset_id):
    """Pendulum: scale 1000 / (return spread of the offline data), shift 0; maze: scale 1, shift -1."""
    offline = tmp_path / "offline"
    train(train_config(offline, dataset=dataset_id, iql=small_iql()), progress=False)
    record: list = []
    make_env = OfflineDataset.make_env
    monkeypatch.setattr(OfflineDataset, "make_env", lambda self, **kw: RecordSteps(make_env(self, **kw), record))
    ft = finetune(ft_config(offline, tmp_path / "ft", online_steps=45, checkpoint_every=15), progress=False)

    if dataset_id == MAZE:
        scale, shift = 1.0, -1.0
    else:
        rets = [e.rewards.astype(np.float64).sum() for e in raw_episodes(dataset_id)]
        scale, shift = 1000.0 / (max(rets) - min(rets)), 0.0
    online = ft.buffer.online_part()
    assert len(record) == len(online["rewards"]) == 45
    raw = np.array([r for r, _ in record])
    assert np.ptp(raw) > 0 or dataset_id == MAZE
    np.testing.assert_allclose(
        online["rewards"].double().reshape(-1).numpy(), raw * scale + shift, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(online["next_obs"].numpy(), np.stack([o for _, o in record]))
