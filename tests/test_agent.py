"""The package's IQL update against the plain reference update and against hand-made checks."""

import copy
import math

import pytest
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core import losses
from iql_tutorial.core.plain import PlainIQL
from iql_tutorial.core.update import cosine_lr

OBS, ACT = 5, 3


def make_batch(gen: torch.Generator, b: int = 64, k: int = 1) -> dict:
    return {
        "obs": torch.randn(b, OBS, generator=gen),
        "actions": torch.rand(b, ACT, generator=gen) * 2 - 1,
        "rewards": torch.randn(b, k, generator=gen),
        "next_obs": torch.randn(b, OBS, generator=gen),
        "terminals": (torch.rand(b, generator=gen) < 0.2).float(),
    }


def params_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return torch.allclose(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("steps", [1, 5])
def test_update_equals_plain_reference(steps):
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dims=(32, 32), total_steps=10)
    agent = IQLAgent(OBS, ACT, cfg)
    plain = PlainIQL(OBS, ACT, hidden=32, total_steps=10)
    plain.load_from_agent(agent)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        batch = make_batch(gen)
        m = agent.update(batch)
        p = plain.update(batch)
        for key in ("value_loss", "critic_loss", "actor_loss"):
            assert m[key].item() == pytest.approx(p[key].item(), rel=1e-5, abs=1e-6), key
    # parameters after the steps: value, actor, each critic and each target critic
    for (name, a), b in zip(agent.value.net.state_dict().items(), plain.value.state_dict().values(), strict=True):
        assert params_close(a, b), name
    assert params_close(agent.actor.log_std, plain.log_std)
    for a, b in zip(agent.actor.net.parameters(), plain.actor.parameters(), strict=True):
        assert params_close(a, b)
    for i, q in enumerate(plain.critics):
        lin = [m for m in q if isinstance(m, torch.nn.Linear)]
        for l_plain, l_ens in zip(lin, [*agent.critic.hidden, agent.critic.out], strict=True):
            assert params_close(l_plain.weight, l_ens.weight[i].T)
    for i, q in enumerate(plain.target_critics):
        lin = [m for m in q if isinstance(m, torch.nn.Linear)]
        for l_plain, l_ens in zip(lin, [*agent.target_critic.hidden, agent.target_critic.out], strict=True):
            assert params_close(l_plain.weight, l_ens.weight[i].T)


@pytest.mark.parametrize("order", ["joint", "sequential"])
def test_critic_target_uses_the_documented_value(order):
    """joint: r + gamma V_old(s'); sequential: r + gamma V_new(s') (V updated first)."""
    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), update_order=order, value_lr=0.1))
    before = copy.deepcopy(agent)
    batch = make_batch(torch.Generator().manual_seed(2))
    m = agent.update(batch)
    v_net = before.value if order == "joint" else agent.value
    with torch.no_grad():
        act = batch["actions"].clamp(-1 + 1e-5, 1 - 1e-5)
        y = batch["rewards"] + 0.99 * (1 - batch["terminals"]).unsqueeze(-1) * v_net(batch["next_obs"])
        q = before.critic(batch["obs"], act)
        expected = ((q - y) ** 2).sum(dim=(0, 2)).mean()
    assert m["critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    other = before.value if order == "sequential" else agent.value
    with torch.no_grad():
        y_other = batch["rewards"] + 0.99 * (1 - batch["terminals"]).unsqueeze(-1) * other(batch["next_obs"])
        assert not torch.allclose(((q - y_other) ** 2).sum(dim=(0, 2)).mean(), expected)


def test_target_critics_follow_polyak_with_period():
    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), target_update_period=3, tau_target=0.5))
    gen = torch.Generator().manual_seed(3)
    target0 = [p.clone() for p in agent.target_critic.parameters()]
    for _ in range(2):
        agent.update(make_batch(gen))
    for p, p0 in zip(agent.target_critic.parameters(), target0, strict=True):
        assert torch.equal(p, p0)  # untouched before the period
    agent.update(make_batch(gen))
    for p, p0, src in zip(agent.target_critic.parameters(), target0, agent.critic.parameters(), strict=True):
        assert params_close(p, 0.5 * p0 + 0.5 * src)
    assert not agent.target_critic.out.weight.requires_grad


def test_multidimensional_rewards_shapes_and_weights():
    torch.manual_seed(0)
    w = [1.0, -0.5]
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), reward_weights=w, num_critics=3, beta=2.0))
    batch = make_batch(torch.Generator().manual_seed(4), k=2)
    obs, act = batch["obs"], batch["actions"].clamp(-1 + 1e-5, 1 - 1e-5)
    assert agent.critic(obs, act).shape == (3, 64, 2)
    assert agent.value(obs).shape == (64, 2)
    with torch.no_grad():
        q = agent.target_critic(obs, act)
        qmin = torch.stack([q[:, :, 0].min(0).values, q[:, :, 1].max(0).values], dim=1)  # sign-aware by hand
        adv = (qmin - agent.value(obs)) @ torch.tensor(w)
        expected_w = torch.exp(2.0 * adv).clamp(max=100.0)
        got = agent.policy_weights(agent.target_q_min(obs, act), agent.value(obs))
    assert torch.allclose(got, expected_w, rtol=1e-5)
    before = copy.deepcopy(agent)
    m = agent.update(batch)
    assert all(torch.isfinite(v).all() for v in m.values())
    with torch.no_grad():  # the value loss: expectile of the sign-flipped residual in the cost dimension
        u = (qmin - before.value(obs)) * torch.tensor([1.0, -1.0])
        expected = (torch.where(u < 0, 0.3, 0.7) * u**2).sum(-1).mean()
    assert m["value_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_behaviour_cloning_uses_unit_weights():
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), policy="bc"))
    batch = make_batch(torch.Generator().manual_seed(5))
    m = agent.update(batch)
    assert m["weight_mean"].item() == 1.0


def test_priority_is_sqrt_of_per_sample_critic_loss():
    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), compute_priority=True))
    before = copy.deepcopy(agent)
    batch = make_batch(torch.Generator().manual_seed(6))
    m = agent.update(batch)
    with torch.no_grad():
        act = batch["actions"].clamp(-1 + 1e-5, 1 - 1e-5)
        y = batch["rewards"] + 0.99 * (1 - batch["terminals"]).unsqueeze(-1) * before.value(batch["next_obs"])
        per = ((before.critic(batch["obs"], act) - y) ** 2).sum(dim=(0, 2))
    assert m["priority"].shape == (64,)
    assert torch.allclose(m["priority"], per.sqrt(), rtol=1e-5)
    assert "priority" not in IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8))).update(batch)


def test_log_prob_matches_torch_distributions():
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)))
    with torch.no_grad():
        agent.actor.log_std.copy_(torch.tensor([-0.3, 0.2, -7.0]))  # the last one is clamped to -5
    obs, act = torch.randn(10, OBS), torch.rand(10, ACT) * 2 - 1
    mean = torch.tanh(agent.actor.net(obs))
    std = agent.actor.log_std.clamp(-5, 2).exp()
    expected = torch.distributions.Normal(mean, std).log_prob(act).sum(-1)
    assert torch.allclose(agent.actor.log_prob(obs, act), expected, atol=1e-5)


def test_act_mode_and_epsilon_greedy():
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), actor_dropout=0.5))
    with torch.no_grad():  # non-zero log-stds (the last one is clamped to -5): the spread must be exp(log_std)
        agent.actor.log_std.copy_(torch.tensor([-3.0, -1.5, -7.0]))
    obs = torch.randn(4000, OBS)
    mode = agent.act(obs)
    assert torch.allclose(mode, torch.tanh(agent.actor.net.eval()(obs)))  # dropout off at evaluation
    agent.actor.train()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a1, a2 = agent.act(obs, epsilon=0.3, generator=g1), agent.act(obs, epsilon=0.3, generator=g2)
    assert torch.equal(a1, a2)  # reproducible from the generator
    explored = ~torch.isclose(a1, mode).all(dim=1)
    assert 0.27 < explored.float().mean().item() < 0.33  # about epsilon of the rows are samples
    assert a1.abs().max() <= 1.0
    # the explored rows are mode + exp(log_std) * N(0, 1): per-dimension spread and no bias
    # (rows clipped at the action bounds left out; with these small stds there are almost none)
    dev = (a1 - mode)[explored]
    inside = (a1[explored].abs() < 1.0).all(dim=1)
    assert inside.float().mean() > 0.95
    std = torch.tensor([-3.0, -1.5, -5.0]).exp()
    assert torch.allclose(dev[inside].std(dim=0), std, rtol=0.08)
    assert torch.all(dev[inside].mean(dim=0).abs() < 0.15 * std)
    assert agent.actor.training  # training mode restored


def test_cosine_actor_lr_schedule():
    assert float(cosine_lr(1.0, 0, 100)) == 1.0
    assert float(cosine_lr(1.0, 50, 100)) == pytest.approx(0.5)
    assert float(cosine_lr(1.0, 100, 100)) == pytest.approx(0.0)
    assert float(cosine_lr(1.0, 150, 100)) == pytest.approx(0.0)
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), total_steps=4))
    gen = torch.Generator().manual_seed(0)
    lrs = []
    for _ in range(4):
        agent.update(make_batch(gen))
        lrs.append(agent.actor_opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([3e-4 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)])
    assert agent.value_opt.param_groups[0]["lr"] == 3e-4  # only the actor decays


def test_full_state_round_trip_and_shape_mismatch():
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)))
    agent.update(make_batch(torch.Generator().manual_seed(0)))
    clone = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)))
    clone.load_full_state(agent.full_state())
    assert clone.num_updates == 1
    for a, b in zip(agent.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="obs_dim=5, act_dim=3"):
        IQLAgent(OBS + 1, ACT, IQLConfig(hidden_dims=(8, 8))).load_full_state(agent.full_state())


def test_critic_ensemble_is_one_batched_computation():
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), num_critics=4))
    obs, act = torch.randn(7, OBS), torch.rand(7, ACT)
    q = agent.critic(obs, act)
    # each replica equals its own plain MLP evaluated alone
    for i in range(4):
        h = torch.cat([obs, act], 1)
        for layer in agent.critic.hidden:
            h = torch.relu(h @ layer.weight[i] + layer.bias[i])
        assert torch.allclose(q[i], h @ agent.critic.out.weight[i] + agent.critic.out.bias[i], atol=1e-6)
    assert losses.replica_min(q).shape == (7, 1)
