"""Evaluation: returns of episodes of different lengths run side by side, epsilon-greedy
evaluation, and when the trainer and the fine-tuner write evaluation rows."""

import importlib
from functools import partial

import gymnasium as gym
import helpers
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import small_iql

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.data import ActionScaler, OfflineDataset
from iql_tutorial.runs.evaluation import evaluate, rollout_returns
from iql_tutorial.runs.finetune import finetune
from iql_tutorial.runs.train import train

torch.set_num_threads(1)
DATA_ID = "tests/pendulum/short-v0"  # 2 random episodes of 30 steps
SCALER = ActionScaler(np.array([-2.0]), np.array([2.0]))


# every run here: the short dataset, small networks, one evaluation episode
train_config = partial(helpers.train_config, dataset=DATA_ID, eval_episodes=1, iql=small_iql())
ft_config = partial(helpers.ft_config, eval_episodes=1)


class Countdown(gym.Env):
    """Episodes of 2 to 12 steps, the length drawn from the reset seed; odd lengths terminate,
    even ones are truncated. Reward 1 + c + a / 2 (c fixed per episode, a the action in [-2, 2]):
    never zero, so rewards collected after an episode ended would change its return."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def __init__(self, record: list | None = None) -> None:
        self.record = record

    def _obs(self) -> np.ndarray:
        return np.array([self.t / 10.0, self.c], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.length = int(self.np_random.integers(2, 13))
        self.c = float(self.np_random.uniform(-0.5, 0.5))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        a = float(np.asarray(action).reshape(-1)[0])
        if self.record is not None:
            self.record.append((self._obs(), a))
        self.t += 1
        end = self.t >= self.length
        return self._obs(), 1.0 + self.c + 0.5 * a, end and self.length % 2 == 1, end and self.length % 2 == 0, {}


def make_agent(log_std: float | None = None) -> IQLAgent:
    torch.manual_seed(0)
    agent = IQLAgent(2, 1, IQLConfig(hidden_dims=(16, 16)))
    if log_std is not None:
        with torch.no_grad():
            agent.actor.log_std.fill_(log_std)
    return agent


def one_episode(agent: IQLAgent, seed: int) -> tuple[float, int]:
    """Return and length of one episode, stepped alone with the agent's mode."""
    env = Countdown()
    obs, _ = env.reset(seed=seed)
    ret, n, done = 0.0, 0, False
    while not done:
        a = agent.act(torch.as_tensor(obs)[None])[0].numpy()
        obs, r, term, trunc, _ = env.step(SCALER.to_env(a).astype(np.float32))
        ret, n, done = ret + r, n + 1, term or trunc
    return ret, n


def test_returns_of_episodes_of_different_lengths_equal_the_episodes_run_alone():
    agent = make_agent()
    got = rollout_returns(agent, Countdown, SCALER, num_episodes=8, seed=11)
    alone = [one_episode(agent, 11 + i) for i in range(8)]
    lengths = [n for _, n in alone]
    assert len(set(lengths)) >= 4 and {n % 2 for n in lengths} == {0, 1}  # ends at different steps, both ways
    np.testing.assert_allclose(got, [r for r, _ in alone], rtol=1e-5)


def test_epsilon_evaluation_explores_at_rate_epsilon_within_bounds():
    agent = make_agent(log_std=1.0)  # a wide Gaussian: many samples fall outside the bounds
    record: list = []
    rollout_returns(agent, lambda: Countdown(record), SCALER, num_episodes=100, seed=0, epsilon=0.3)
    obs = np.stack([o for o, _ in record])
    acts = np.array([a for _, a in record])
    mode = SCALER.to_env(agent.act(torch.as_tensor(obs)).numpy()).reshape(-1)
    explored = ~np.isclose(acts, mode, rtol=0, atol=1e-5)
    assert len(acts) > 800
    assert abs(explored.mean() - 0.3) < 0.05  # about epsilon of the actions are samples
    assert np.all(acts >= -2.0) and np.all(acts <= 2.0)  # clipped to the action bounds
    assert np.any(np.isclose(np.abs(acts[explored]), 2.0))  # (some samples were clipped)
    record.clear()
    rollout_returns(agent, lambda: Countdown(record), SCALER, num_episodes=20, seed=0)  # epsilon 0: the mode
    mode0 = SCALER.to_env(agent.act(torch.as_tensor(np.stack([o for o, _ in record]))).numpy()).reshape(-1)
    np.testing.assert_allclose([a for _, a in record], mode0, rtol=0, atol=1e-5)
    again = rollout_returns(agent, Countdown, SCALER, num_episodes=10, seed=3, epsilon=0.3)
    np.testing.assert_array_equal(
        again, rollout_returns(agent, Countdown, SCALER, num_episodes=10, seed=3, epsilon=0.3)
    )


def test_evaluate_reports_returns_and_normalized_scores(monkeypatch):
    agent = make_agent(log_std=-1.0)
    dataset = OfflineDataset("tests/countdown", None, SCALER, ref_min_score=2.0, ref_max_score=12.0)
    monkeypatch.setattr(dataset, "make_env", lambda **kw: Countdown())
    for eps in (0.0, 0.5):
        returns = rollout_returns(agent, Countdown, SCALER, num_episodes=6, seed=4, epsilon=eps)
        out = evaluate(agent, dataset, num_episodes=6, seed=4, epsilon=eps)
        assert out["return_mean"] == pytest.approx(returns.mean()) and out["return_std"] == pytest.approx(returns.std())
        scores = 100 * (returns - 2.0) / 10.0
        assert out["score_mean"] == pytest.approx(scores.mean()) and out["score_std"] == pytest.approx(scores.std())


def test_evaluation_at_the_last_step_when_eval_every_does_not_divide_the_budget(tiny_minari, tmp_path):
    result = train(train_config(tmp_path / "run", steps=25, eval_every=10, log_every=10, checkpoint_every=10),
                   progress=False)  # fmt: skip
    assert list(result.eval_log["step"]) == [10, 20, 25]
    assert list(pd.read_csv(tmp_path / "run" / "eval_log.csv")["step"]) == [10, 20, 25]
    assert list(result.train_log["step"]) == [10, 20, 25]
    assert result.eval_log[["return_mean", "score_mean"]].notna().all().all()
    ft = finetune(ft_config(tmp_path / "run", tmp_path / "ft", online_steps=40, eval_every=15, log_every=10,
                            checkpoint_every=10), progress=False)  # fmt: skip
    assert list(ft.eval_log["step"]) == [0, 15, 30, 40]  # 0: the offline policy


def test_no_evaluation_episodes_write_no_evaluation_rows(tiny_minari, tmp_path, monkeypatch):
    def no_evaluation(*a, **k):
        raise AssertionError("evaluate was called with eval_episodes=0")

    for fn in (train, finetune):
        monkeypatch.setattr(importlib.import_module(fn.__module__), "evaluate", no_evaluation)
    result = train(train_config(tmp_path / "run", steps=20, eval_every=10, log_every=10, eval_episodes=0),
                   progress=False)  # fmt: skip
    assert len(result.eval_log) == 0 and list(result.train_log["step"]) == [10, 20]
    assert not (tmp_path / "run" / "eval_log.csv").exists() or len(pd.read_csv(tmp_path / "run" / "eval_log.csv")) == 0
    ft = finetune(ft_config(tmp_path / "run", tmp_path / "ft", online_steps=30, eval_every=10, log_every=10,
                            checkpoint_every=10, eval_episodes=0), progress=False)  # fmt: skip
    assert len(ft.eval_log) == 0 and list(ft.train_log["step"]) == [10, 20, 30]  # not even the step-0 row
    assert not (tmp_path / "ft" / "eval_log.csv").exists() or len(pd.read_csv(tmp_path / "ft" / "eval_log.csv")) == 0
