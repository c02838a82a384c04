"""Each loss and target of IQL against numbers computed by hand."""

import math

import pytest
import torch

from iql_tutorial.core import losses


def test_expectile_loss_is_asymmetric_by_hand():
    u = torch.tensor([2.0, -2.0, 0.5, -0.5, 0.0])
    got = losses.expectile_loss(u, 0.7)
    # |0.7 - 1(u<0)| * u^2: 0.7*4, 0.3*4, 0.7*0.25, 0.3*0.25, 0
    assert torch.allclose(got, torch.tensor([2.8, 1.2, 0.175, 0.075, 0.0]))


def test_expectile_half_is_half_mse():
    u = torch.randn(100)
    assert torch.allclose(losses.expectile_loss(u, 0.5), 0.5 * u**2)


def test_value_loss_uses_target_minus_value_and_sums_dimensions():
    target_q = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    value = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    # u = [[1, -1], [-1, 2]] -> weights tau=0.9: [[.9, .1], [.1, .9]] -> [[.9, .1], [.1, 3.6]]
    # sum over k: [1.0, 3.7]; mean over batch: 2.35
    assert losses.value_loss(target_q, value, 0.9).item() == pytest.approx(2.35)


def test_value_loss_is_sign_aware_for_negative_weights():
    target_q = torch.tensor([[1.0, 1.0]])
    value = torch.tensor([[0.0, 0.0]])  # u = +1 in both dimensions
    w = torch.tensor([1.0, -2.0])
    # dimension 0 (reward): u = +1 weighs tau = 0.9; dimension 1 (cost): u is negated to -1, weighs 0.1
    assert losses.value_loss(target_q, value, 0.9, w).item() == pytest.approx(0.9 + 0.1)
    assert losses.value_loss(target_q, value, 0.9).item() == pytest.approx(1.8)


def test_reference_designs_plain_expectile_for_negative_weights():
    """``sign_aware=False`` (ALF's choice): the upper expectile in every dimension, costs included."""
    target_q = torch.tensor([[1.0, 1.0], [0.0, -2.0]])
    value = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # u = [[1, 1], [-1, -2]]
    w = torch.tensor([1.0, -2.0])
    # plain: [[.9*1, .9*1], [.1*1, .1*4]] -> sums [1.8, 0.5] -> mean 1.15
    assert losses.value_loss(target_q, value, 0.9, w, sign_aware=False).item() == pytest.approx(1.15)
    # sign-aware: the cost column is negated, u = [[1, -1], [-1, 2]] -> [[.9, .1], [.1, .9*4]] -> [1.0, 3.7]
    assert losses.value_loss(target_q, value, 0.9, w, sign_aware=True).item() == pytest.approx(2.35)
    per = losses.value_loss_per_sample(target_q, value, 0.9, w, sign_aware=False)
    assert torch.allclose(per, torch.tensor([1.8, 0.5]))


def test_priority_critic_alone_or_with_the_value_loss():
    critic = torch.tensor([4.0, 0.25, 0.0])
    value = torch.tensor([5.0, 0.75, 1.0])
    assert torch.allclose(losses.priority(critic, value, "critic"), torch.tensor([2.0, 0.5, 0.0]))
    assert torch.allclose(losses.priority(critic, value, "critic+value"), torch.tensor([3.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="critic\\+value"):
        losses.priority(critic, value, "td")


def test_agent_priority_options_by_hand():
    """The agent returns the option's priority from its own per-sample losses, computed here by
    hand from the agent's networks (critic: sum over replicas of the squared TD error)."""
    from iql_tutorial import IQLAgent, IQLConfig

    g = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(8, 3, generator=g), "actions": torch.rand(8, 2, generator=g) * 2 - 1,
             "rewards": torch.randn(8, 1, generator=g), "next_obs": torch.randn(8, 3, generator=g),
             "terminals": torch.zeros(8)}  # fmt: skip
    for mode in ("critic", "critic+value"):
        torch.manual_seed(1)
        agent = IQLAgent(3, 2, IQLConfig(hidden_dims=(8, 8), compute_priority=True, priority=mode, expectile=0.8))
        with torch.no_grad():
            q = agent.critic(batch["obs"], batch["actions"])  # [N, B, 1], before the update
            y = batch["rewards"] + 0.99 * agent.value(batch["next_obs"])
            critic_ps = ((q - y) ** 2).sum(dim=(0, 2))
            u = agent.target_critic(batch["obs"], batch["actions"]).amin(0) - agent.value(batch["obs"])
            value_ps = (torch.where(u < 0, 0.2, 0.8) * u**2).sum(-1)
        got = agent.update(batch)["priority"]
        want = critic_ps.sqrt() if mode == "critic" else (critic_ps + value_ps).sqrt()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sign_aware", [True, False])
def test_agent_value_loss_follows_the_sign_aware_option(sign_aware):
    from iql_tutorial import IQLAgent, IQLConfig

    g = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(8, 3, generator=g), "actions": torch.rand(8, 2, generator=g) * 2 - 1,
             "rewards": torch.randn(8, 2, generator=g), "next_obs": torch.randn(8, 3, generator=g),
             "terminals": torch.zeros(8)}  # fmt: skip
    torch.manual_seed(1)
    cfg = IQLConfig(hidden_dims=(8, 8), reward_weights=[1.0, -1.0], sign_aware_expectile=sign_aware)
    agent = IQLAgent(3, 2, cfg)
    with torch.no_grad():
        tq = agent.target_critic(batch["obs"], batch["actions"])  # [N, B, 2]
        qmin = torch.stack([tq[..., 0].amin(0), tq[..., 1].amax(0)], -1)  # sign-aware replica min
        u = qmin - agent.value(batch["obs"])
        if sign_aware:
            u = u * torch.tensor([1.0, -1.0])
        want = (torch.where(u < 0, 0.3, 0.7) * u**2).sum(-1).mean()
    got = agent.update(batch)["value_loss"]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_td_target_masks_terminal_but_not_truncation():
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v_next = torch.tensor([[10.0], [10.0], [10.0]])
    terminal = torch.tensor([0.0, 1.0, 0.0])  # the third row is a time-limit truncation: not terminal
    got = losses.td_target(r, v_next, terminal, 0.9)
    assert torch.allclose(got, torch.tensor([[10.0], [2.0], [12.0]]))


def test_replica_min_scalar_is_plain_min():
    q = torch.tensor([[[1.0], [5.0]], [[2.0], [4.0]], [[0.5], [6.0]]])  # [N=3, B=2, k=1]
    assert torch.equal(losses.replica_min(q), torch.tensor([[0.5], [4.0]]))


def test_replica_min_is_sign_aware_with_mixed_weights():
    # N=2 replicas, B=1, k=3 dims with weights (+2, -1, 0)
    q = torch.tensor([[[1.0, 1.0, 3.0]], [[2.0, 4.0, -1.0]]])
    w = torch.tensor([2.0, -1.0, 0.0])
    got = losses.replica_min(q, w)
    # positive weight: min(1, 2) = 1; negative: max(1, 4) = 4; zero counts as positive: min(3, -1) = -1
    assert torch.equal(got, torch.tensor([[1.0, 4.0, -1.0]]))
    # the weighted sum is the pessimistic one among all replica choices per dimension
    assert (got @ w).item() == pytest.approx(2 * 1 - 4 + 0)


def test_advantage_weights_dimensions():
    tq = torch.tensor([[1.0, 4.0], [0.0, 0.0]])
    v = torch.tensor([[0.5, 1.0], [1.0, -1.0]])
    assert torch.allclose(losses.advantage(tq, v), torch.tensor([3.5, 0.0]))
    w = torch.tensor([2.0, -1.0])
    assert torch.allclose(losses.advantage(tq, v, w), torch.tensor([2 * 0.5 - 3.0, 2 * -1.0 - 1.0]))


def test_awr_weights_and_clamp():
    adv = torch.tensor([-1.0, 0.0, 0.5, 2.0, 50.0])
    got = losses.awr_weights(adv, beta=3.0, max_weight=100.0)
    expected = [math.exp(-3.0), 1.0, math.exp(1.5), 100.0, 100.0]  # exp(6) = 403 > 100: clamped
    assert torch.allclose(got, torch.tensor(expected))
    assert torch.isfinite(losses.awr_weights(torch.tensor([1e6]), 10.0)).all()


def test_awr_loss_detaches_weights():
    w = torch.tensor([2.0, 0.5], requires_grad=True)
    logp = torch.tensor([-1.0, -3.0], requires_grad=True)
    loss = losses.awr_loss(w, logp)
    assert loss.item() == pytest.approx(-(2 * -1 + 0.5 * -3) / 2)
    loss.backward()
    assert w.grad is None
    assert torch.allclose(logp.grad, torch.tensor([-1.0, -0.25]))


def test_critic_loss_per_sample_sums_replicas_and_dims():
    q = torch.tensor([[[1.0], [0.0]], [[3.0], [2.0]]])  # N=2, B=2, k=1
    y = torch.tensor([[2.0], [0.0]])
    # sample 0: (1-2)^2 + (3-2)^2 = 2; sample 1: 0 + 4 = 4
    assert torch.equal(losses.critic_loss_per_sample(q, y), torch.tensor([2.0, 4.0]))


def test_polyak_update_by_hand():
    target = [torch.tensor([0.0, 10.0])]
    source = [torch.tensor([1.0, 0.0])]
    losses.polyak_update(target, source, 0.1)
    assert torch.allclose(target[0], torch.tensor([0.1, 9.0]))


def test_polyak_update_every_acts_only_on_multiples_of_the_period():
    source = [torch.tensor([1.0, 0.0])]
    for period, step, expected in [(3, 2.0, [0.0, 10.0]), (3, 3.0, [0.1, 9.0]), (1, 7.0, [0.1, 9.0])]:
        target = [torch.tensor([0.0, 10.0])]
        losses.polyak_update_every(target, source, 0.1, torch.tensor(step), period)
        assert torch.allclose(target[0], torch.tensor(expected)), (period, step)
