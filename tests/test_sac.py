"""SAC (behaviour policies only): its losses by hand, the batched twin critic, and a short learning run."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from iql_tutorial import sac


def test_squashed_log_prob_matches_torch_tanh_distribution():
    torch.manual_seed(0)
    mu, log_std = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64).clamp(-2, 0.5)
    u = mu + log_std.exp() * torch.randn(64, 3, dtype=torch.float64)
    ref = TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform()]).log_prob(torch.tanh(u)).sum(-1)
    got = sac.squashed_log_prob(u, mu, log_std)
    assert torch.allclose(got, ref, atol=1e-6)


def test_squashed_log_prob_is_finite_for_saturated_actions():
    u = torch.tensor([[30.0, -30.0]])
    assert torch.isfinite(sac.squashed_log_prob(u, torch.zeros(1, 2), torch.zeros(1, 2))).all()


def test_critic_target_by_hand():
    r = torch.tensor([1.0, 0.0])
    done = torch.tensor([0.0, 1.0])
    next_q = torch.tensor([[2.0, 5.0], [3.0, 4.0]])  # [2 critics, B]: min = [2, 4]
    logp = torch.tensor([-1.0, 0.5])
    got = sac.critic_target(r, done, next_q, logp, torch.tensor(0.1), 0.9)
    # row 0: 1 + 0.9 * (2 - 0.1 * -1) = 1 + 0.9 * 2.1 = 2.89; row 1: terminal -> 0
    assert torch.allclose(got, torch.tensor([2.89, 0.0]))


def test_critic_loss_sums_critics_of_mean_squared_errors():
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    y = torch.tensor([0.0, 0.0])
    # critic 0: (1 + 4) / 2 = 2.5; critic 1: 0 -> 2.5
    assert sac.critic_loss(q, y).item() == pytest.approx(2.5)


def test_actor_loss_by_hand():
    q_pi = torch.tensor([[1.0, 3.0], [2.0, 0.0]])  # min over critics: [1, 0]
    logp = torch.tensor([-2.0, 4.0])
    # mean(0.5 * logp - min q) = mean([-1 - 1, 2 - 0]) = 0
    assert sac.actor_loss(q_pi, logp, torch.tensor(0.5)).item() == pytest.approx(0.0)


def test_alpha_loss_raises_alpha_when_entropy_is_too_low():
    log_alpha = torch.tensor(0.0, requires_grad=True)
    logp = torch.tensor([5.0, 5.0])  # entropy -5, below a target of -1
    sac.alpha_loss(log_alpha, logp, target_entropy=-1.0).backward()
    assert log_alpha.grad.item() < 0  # gradient descent increases log_alpha


def test_twin_critic_is_two_independent_mlps():
    torch.manual_seed(0)
    critic = sac.TwinCritic(3, 2, (8, 8))
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    out = critic(obs, act)
    assert out.shape == (2, 5)
    x0 = torch.cat([obs, act], -1)
    for i in range(2):
        x = x0
        for j, (w, b) in enumerate(zip(critic.weights, critic.biases)):
            x = x @ w[i] + b[i]
            if j < len(critic.weights) - 1:
                x = torch.relu(x)
        assert torch.allclose(out[i], x.squeeze(-1), atol=1e-6)


def _batch(n: int = 32, obs_dim: int = 3, act_dim: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "obs": torch.randn(n, obs_dim, generator=g),
        "actions": torch.rand(n, act_dim, generator=g) * 2 - 1,
        "rewards": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, obs_dim, generator=g),
        "terminals": (torch.rand(n, generator=g) < 0.2).float(),
    }


def test_update_moves_targets_by_polyak_only():
    agent = sac.SAC(3, 1, sac.SACConfig(hidden=(16, 16), tau=0.1))
    before = [p.detach().clone() for p in agent.critic_target.parameters()]
    agent.update(_batch())
    for t_old, t_new, online in zip(before, agent.critic_target.parameters(), agent.critic.parameters()):
        assert torch.allclose(t_new, 0.9 * t_old + 0.1 * online.detach(), atol=1e-6)


def test_actor_step_leaves_critic_gradients_unset():
    agent = sac.SAC(3, 1, sac.SACConfig(hidden=(16, 16)))
    logs = agent.update(_batch())
    assert all(torch.isfinite(v) for v in logs.values())
    # the critic's gradients are those of its own loss (the actor step froze it)
    q = agent.critic(_batch()["obs"], _batch()["actions"])
    assert q.requires_grad


def test_policy_save_and_load_round_trip(tmp_path):
    actor = sac.SquashedGaussianActor(3, 1, (16, 16))
    sac.save_policy(actor, tmp_path / "p", {"note": "x"})
    loaded, meta = sac.load_policy(tmp_path / "p")
    obs = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    assert np.allclose(loaded.act(obs, deterministic=True), actor.act(obs, deterministic=True))
    assert meta["note"] == "x" and meta["hidden"] == [16, 16]
    with pytest.raises(FileNotFoundError, match="iql_tutorial.sac"):
        sac.load_policy(tmp_path / "missing")


def test_to_env_action_maps_bounds():
    import gymnasium as gym

    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert np.allclose(sac.to_env_action(np.array([-1.0, 0.0, 1.0, 3.0])[:, None], space).ravel(), [-2, 0, 2, 2])


def test_sac_learns_pendulum_quickly(tmp_path):
    """4,500 steps of SAC (64x64, one update per step) lift Pendulum far above random (about -1240)."""
    t0 = time.time()
    cfg = sac.SACConfig(hidden=(64, 64), start_steps=500, log_every=10_000)
    agent, buf, state = sac.train_sac("Pendulum-v1", 4500, tmp_path, cfg, seed=0, snapshot_every=10_000, progress=False)
    returns = sac.evaluate_policy(agent.actor, "Pendulum-v1", episodes=5, seed=99)
    assert buf.size == 4500 and (tmp_path / "training_curve.csv").exists()
    assert returns.mean() > -700, f"SAC did not learn: {returns}"
    assert time.time() - t0 < 120
    assert math.isfinite(state.cpu_seconds)
