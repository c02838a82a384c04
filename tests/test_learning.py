"""IQL learns values we can compute exactly, on small data with a fixed seed (CPU, seconds)."""

import numpy as np
import pytest
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.data import Transitions

torch.set_num_threads(1)  # small networks: one thread is fastest and immune to busy neighbours

FAST = {
    "hidden_dims": (64, 64),
    "actor_lr": 1e-3,
    "critic_lr": 1e-3,
    "value_lr": 1e-3,
    "tau_target": 0.05,
    "cosine_actor_lr": False,
}


def expectile(values: np.ndarray, tau: float) -> float:
    """The tau-expectile of equally likely values, by bisection on its first-order condition
    tau * E[(x - m)+] = (1 - tau) * E[(m - x)+]. Independent of the package."""
    lo, hi = float(values.min()), float(values.max())
    for _ in range(100):
        m = 0.5 * (lo + hi)
        g = tau * np.clip(values - m, 0, None).mean() - (1 - tau) * np.clip(m - values, 0, None).mean()
        lo, hi = (m, hi) if g > 0 else (lo, m)
    return 0.5 * (lo + hi)


def table(obs, act, rew, nxt, term) -> Transitions:
    n = len(obs)
    f = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    return Transitions(
        obs=f(obs),
        actions=f(act),
        rewards=f(rew),
        next_obs=f(nxt),
        terminals=f(term),
        timeouts=torch.zeros(n),
        episode_ids=torch.arange(n),
    )


def train(t: Transitions, cfg: IQLConfig, steps: int, seed: int = 0) -> IQLAgent:
    torch.manual_seed(seed)
    agent = IQLAgent(t.obs_dim, t.act_dim, cfg)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        agent.update(t.sample(cfg.batch_size, gen))
    return agent


@pytest.mark.parametrize("tau", [0.5, 0.9])
def test_bandit_value_converges_to_the_expectile_of_rewards(tau):
    """One-step data: Q(s, a) = r(s, a) and V(s) must be the tau-expectile over the data's actions."""
    actions = np.array([-0.75, -0.25, 0.25, 0.75])
    rewards = np.array([[0.0, 1.0, 2.0, 6.0], [-1.0, -1.0, 3.0, 0.5]])  # per state, per action
    obs, act, rew = [], [], []
    for s in range(2):
        for j, a in enumerate(actions):
            obs += [np.eye(2)[s]] * 50
            act += [[a]] * 50
            rew += [rewards[s, j]] * 50
    t = table(obs, act, rew, obs, np.ones(len(obs)))
    agent = train(t, IQLConfig(expectile=tau, **FAST), 2500)
    with torch.no_grad():
        v = agent.value(torch.eye(2)).squeeze(-1).numpy()
        q = agent.critic(torch.eye(2).repeat_interleave(4, 0), torch.tensor(actions).repeat(2)[:, None].float())
    for s in range(2):
        assert v[s] == pytest.approx(expectile(rewards[s], tau), abs=0.1)
    assert q.mean(0).squeeze(-1).numpy() == pytest.approx(rewards.reshape(-1), abs=0.15)


CHAIN_N, CHAIN_GAMMA = 5, 0.9
CHAIN_MOVES = {-0.5: -1, 0.5: 1}


def chain_step(s: int, a: float) -> tuple[int, float, float]:
    s2 = min(max(s + CHAIN_MOVES[a], 0), CHAIN_N - 1)
    return s2, float(s2 == CHAIN_N - 1), float(s2 == CHAIN_N - 1)


def chain_fixed_point(tau: float) -> np.ndarray:
    """V(s) = expectile_tau over the data's actions of r + gamma V(s'), by value iteration
    (independent of the package); values of the non-terminal states."""
    v = np.zeros(CHAIN_N)
    for _ in range(500):
        new = v.copy()
        for s in range(CHAIN_N - 1):
            qs = [r + CHAIN_GAMMA * (1 - d) * v[s2] for s2, r, d in (chain_step(s, a) for a in CHAIN_MOVES)]
            new[s] = expectile(np.array(qs), tau)
        v = new
    return v[: CHAIN_N - 1]


def test_chain_values_converge_to_the_expectile_fixed_point():
    """A 5-state chain, goal (terminal, reward 1) at the right end, actions left/right.

    With tau = 0.7, IQL's V is the fixed point of V(s) = expectile_tau over the data's actions
    of r + gamma V(s'), which lies between the behaviour value (tau = 0.5) and the optimal value,
    clearly below the optimal one (about 0.2 at the far end). The tolerance separates that fixed
    point from the optimal value and from the fixed point of tau = 0.8: a learner that ignores
    tau, or uses another one, fails.
    """
    n, gamma, tau, tol = CHAIN_N, CHAIN_GAMMA, 0.7, 0.04
    v = chain_fixed_point(tau)
    optimal = gamma ** np.arange(n - 2, -1, -1)  # V*(s) = gamma^(steps to goal - 1)
    other = chain_fixed_point(0.8)
    # the test can tell them apart: no vector is within tol of v and of either competitor
    assert np.abs(optimal - v).max() > 2 * tol and np.abs(other - v).max() > 2 * tol
    assert optimal[0] - v[0] > 0.2  # tau = 0.7 is far from the optimal value at s0
    obs, act, rew, nxt, term = [], [], [], [], []
    for s in range(n - 1):
        for a in CHAIN_MOVES:
            s2, r, d = chain_step(s, a)
            obs += [np.eye(n)[s]] * 40
            act += [[a]] * 40
            rew += [r] * 40
            nxt += [np.eye(n)[s2]] * 40
            term += [d] * 40
    t = table(obs, act, rew, nxt, term)
    agent = train(t, IQLConfig(expectile=tau, gamma=gamma, **FAST), 4000)
    with torch.no_grad():
        learned = agent.value(torch.eye(n)[: n - 1]).squeeze(-1).numpy()
    assert np.abs(learned - v).max() < tol, (learned, v)  # the tau = 0.7 fixed point ...
    assert np.abs(learned - optimal).max() > tol, (learned, optimal)  # ... not the optimal value ...
    assert np.abs(learned - other).max() > tol, (learned, other)  # ... nor another tau's fixed point
    assert np.all(learned < optimal + 0.03)  # pessimistic: never above the optimal value
    assert np.all(np.diff(learned) > 0)  # closer to the goal is worth more


def test_awr_policy_picks_the_best_dataset_action():
    """Bandit with two actions in the data: AWR's mean moves to the better one, BC's stays between."""
    obs = [[1.0]] * 400
    act = [[-0.5]] * 200 + [[0.5]] * 200
    rew = [0.0] * 200 + [1.0] * 200
    t = table(obs, act, rew, obs, np.ones(400))
    iql = train(t, IQLConfig(beta=10.0, **FAST), 1500)
    bc = train(t, IQLConfig(policy="bc", **FAST), 1500)
    x = torch.ones(1, 1)
    assert iql.act(x).item() > 0.4
    assert abs(bc.act(x).item()) < 0.15
