"""SAC (behaviour policies only): its losses by hand, the batched twin critic, and a short learning run."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from helpers import Killed, assert_same_state
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from iql_tutorial.datasets import sac


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
    """Each replica is its own ReLU MLP (layers ``[2, in, out]``), initialised like ``nn.Linear``:
    weights and biases uniform within 1 / sqrt(fan_in), different per replica."""
    torch.manual_seed(0)
    critic = sac.SACCritic(3, 2, (8, 8))
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    out = critic(obs, act)
    assert out.shape == (2, 5)
    layers = [*critic.hidden, critic.out]
    for i in range(2):
        x = torch.cat([obs, act], -1)
        for j, layer in enumerate(layers):
            x = x @ layer.weight[i] + layer.bias[i]
            if j < len(layers) - 1:
                x = torch.relu(x)
        assert torch.allclose(out[i], x.squeeze(-1), atol=1e-6)
    for layer in layers:
        bound = 1.0 / math.sqrt(layer.weight.shape[1])
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        assert not torch.equal(layer.weight[0], layer.weight[1])


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
    for t_old, t_new, online in zip(before, agent.critic_target.parameters(), agent.critic.parameters(), strict=True):
        assert torch.allclose(t_new, 0.9 * t_old + 0.1 * online.detach(), atol=1e-6)


def test_actor_step_leaves_critic_gradients_unset():
    """After an update the critic's gradients are those of the critic loss alone: the actor
    loss (which backpropagates through the critic) added nothing to them."""
    agent = sac.SAC(3, 1, sac.SACConfig(hidden=(16, 16)))
    before = copy.deepcopy(agent)
    batch = _batch()
    torch.manual_seed(5)  # the target's next actions are drawn from the global generator
    logs = agent.update(batch)
    assert all(torch.isfinite(v) for v in logs.values())
    # the critic loss by hand, on the parameters before the update and the same random draws
    torch.manual_seed(5)
    with torch.no_grad():
        next_a, next_logp = before.actor.sample(batch["next_obs"])
        next_q = before.critic_target(batch["next_obs"], next_a)
        alpha = before.log_alpha.exp()
        y = batch["rewards"] + 0.99 * (1 - batch["terminals"]) * (next_q.min(dim=0).values - alpha * next_logp)
    q = before.critic(batch["obs"], batch["actions"])
    loss = ((q - y) ** 2).mean(dim=1).sum()
    expected = torch.autograd.grad(loss, list(before.critic.parameters()))
    for p, g in zip(agent.critic.parameters(), expected, strict=True):
        assert p.grad is not None and torch.allclose(p.grad, g, atol=1e-6)
        assert p.requires_grad  # unfrozen again after the actor step
    assert all(p.grad is None for p in agent.critic_target.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_policy_save_and_load_round_trip(tmp_path):
    actor = sac.SquashedGaussianActor(3, 1, (16, 16))
    sac.save_policy(actor, tmp_path / "p", {"note": "x"})
    loaded, meta = sac.load_policy(tmp_path / "p")
    obs = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    assert np.allclose(loaded.act(obs, deterministic=True), actor.act(obs, deterministic=True))
    assert meta["note"] == "x" and meta["hidden"] == [16, 16]
    with pytest.raises(FileNotFoundError, match="iql_tutorial sac"):
        sac.load_policy(tmp_path / "missing")


def test_to_env_action_maps_bounds():
    import gymnasium as gym

    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    assert np.allclose(sac.to_env_action(np.array([-1.0, 0.0, 1.0, 3.0])[:, None], space).ravel(), [-2, 0, 2, 2])


def test_sac_learns_pendulum_quickly(tmp_path):
    """4,500 steps of SAC (64x64, one update per step) lift Pendulum far above random (about -1240)."""
    cfg = sac.SACConfig(hidden=(64, 64), start_steps=500, log_every=10_000)
    agent, buf, state = sac.train_sac("Pendulum-v1", 4500, tmp_path, cfg, seed=0, snapshot_every=10_000, progress=False)
    returns = sac.evaluate_policy(agent.actor, "Pendulum-v1", episodes=5, seed=99)
    assert buf.size == 4500 and (tmp_path / "training_curve.csv").exists()
    assert returns.mean() > -700, f"SAC did not learn: {returns}"
    assert math.isfinite(state.cpu_seconds)


def test_killed_sac_training_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    """300 steps, checkpoints at 100 and 200: a run killed at step 250 and run again continues
    from step 200 to exactly the agent, replay buffer, curves and snapshots of an uninterrupted run."""
    cfg = sac.SACConfig(hidden=(16, 16), batch_size=16, start_steps=50)
    kw = {"config": cfg, "seed": 0, "snapshot_every": 100, "eval_episodes": 1, "checkpoint_every": 100}

    def run(name):
        return sac.train_sac("Pendulum-v1", 300, tmp_path / name, checkpoint_dir=tmp_path / f"{name}-ckpt",
                             progress=False, **kw)  # fmt: skip

    full_agent, full_buf, full_state = run("full")
    original, calls = sac.SAC.update, []

    def dying_update(self, batch):
        calls.append(1)
        if len(calls) == 201:  # one update per step from step 50: this is step 250
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(sac.SAC, "update", dying_update)
    with pytest.raises(Killed):
        run("killed")
    monkeypatch.undo()
    assert sac.load_checkpoint_file(tmp_path / "killed-ckpt" / "sac_checkpoint.pt")["state"]["step"] == 200
    agent, buf, state = run("killed")

    assert_same_state(full_agent.state_dict(), agent.state_dict(), "agent")
    assert len(buf) == len(full_buf) == 300
    # every transition, and where episodes end (the cut at each checkpoint is an episode end)
    for k, v in sac.replay_arrays(full_buf).items():
        np.testing.assert_array_equal(v, sac.replay_arrays(buf)[k], err_msg=k)
    assert state.step == 300 and state.curve == full_state.curve and state.evals == full_state.evals
    for f in ("training_curve.csv", "evals.csv"):
        assert (tmp_path / "killed" / f).read_text() == (tmp_path / "full" / f).read_text(), f
    for step in (100, 200, 300):
        a = torch.load(tmp_path / "full" / "snapshots" / f"step_{step:07d}.pt", weights_only=True)
        b = torch.load(tmp_path / "killed" / "snapshots" / f"step_{step:07d}.pt", weights_only=True)
        assert_same_state(a, b, f"snapshot {step}")
    with np.load(tmp_path / "full-ckpt" / "replay.npz") as za, np.load(tmp_path / "killed-ckpt" / "replay.npz") as zb:
        assert sorted(za.files) == sorted(zb.files)
        for k in za.files:
            np.testing.assert_array_equal(za[k], zb[k], err_msg=f"replay.npz {k}")
