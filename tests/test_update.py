"""The IQL update: ``IQLAgent.update`` / ``run_updates`` in both update orders and every mode
(``core.update``, ``core.adam``, ``core.runner``), checked against hand-computed numbers, against
an independent joint update written here with autograd (``.backward()``) and ``torch.optim.Adam``,
and against the plain reference ``core.plain.PlainIQL``.

Tolerances: the step computes the same arithmetic in another order (Adam's bias corrections in
float32 tensors, gradients from ``torch.func.grad``), so parameters agree to 1e-5 after 6 steps;
the compiled step fuses kernels and agrees to 1e-4. Every compiled test uses the same shapes
and settings (``CFG``), so Dynamo compiles the graph once per process and the tests reuse it.
"""

import copy
import dataclasses
import math

import pytest
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core import losses
from iql_tutorial.core import runner as runner_mod
from iql_tutorial.core.adam import adam_
from iql_tutorial.core.plain import PlainIQL, copy_agent_weights, mlp
from iql_tutorial.core.runner import CudaGraphUpdate, UpdateRunner, resolve_mode
from iql_tutorial.core.update import NETWORKS, cosine_lr, iql_losses
from iql_tutorial.data import Transitions
from iql_tutorial.data.transitions import synthetic_transitions

torch.set_num_threads(1)
OBS, ACT = 5, 3
CFG = IQLConfig(hidden_dims=(16, 16), batch_size=32)  # the one compiled configuration


def data(n: int = 500) -> Transitions:
    return synthetic_transitions(n, "cpu", obs_dim=OBS, act_dim=ACT, terminal_rate=0.1)


def batches(n: int, seed: int = 1, size: int = 32, k: int = 1) -> list[dict[str, torch.Tensor]]:
    """``n`` random batches of ``size`` transitions with a ``k``-dimensional reward (the one batch
    helper of these tests)."""
    gen = torch.Generator().manual_seed(seed)
    return [
        {
            "obs": torch.randn(size, OBS, generator=gen),
            "actions": torch.rand(size, ACT, generator=gen) * 2 - 1,
            "rewards": torch.randn(size, k, generator=gen),
            "next_obs": torch.randn(size, OBS, generator=gen),
            "terminals": (torch.rand(size, generator=gen) < 0.2).float(),
        }
        for _ in range(n)
    ]


def assert_same_state(a: IQLAgent, b: IQLAgent, tol: float) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if x is not None:
            torch.testing.assert_close(x, y, rtol=tol, atol=tol, msg=name)
    for opt in ("value_opt", "critic_opt", "actor_opt"):
        sa, sb = getattr(a, opt).state_dict()["state"], getattr(b, opt).state_dict()["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for key in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(sa[i][key], sb[i][key], rtol=tol, atol=tol, msg=f"{opt} {i} {key}")
    assert a.num_updates == b.num_updates


class AutogradReference:
    """The joint update written the usual way: one ``.backward()`` of the summed losses, three
    ``torch.optim.Adam`` steps (non-fused), the cosine schedule set on the optimizer, and Polyak
    with a Python ``if`` on the period. Shares nothing with ``core.update.iql_update`` but the
    losses (``iql_losses``, called on the networks' own parameters)."""

    def __init__(self, agent: IQLAgent) -> None:
        self.agent = agent
        cfg = agent.config
        self.opts = [
            torch.optim.Adam(agent.value.parameters(), lr=cfg.value_lr, foreach=False),
            torch.optim.Adam(agent.critic.parameters(), lr=cfg.critic_lr, foreach=False),
            torch.optim.Adam(agent.actor.parameters(), lr=cfg.actor_lr, foreach=False),
        ]
        self.n = 0

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        agent, cfg = self.agent, self.agent.config
        act = batch["actions"].clamp(-1 + 1e-5, 1 - 1e-5)
        for g in self.opts[2].param_groups:
            g["lr"] = float(cosine_lr(cfg.actor_lr, self.n, cfg.total_steps))
        params = {name: dict(getattr(agent, name).named_parameters()) for name in NETWORKS}
        batch_ = (batch["obs"], act, batch["rewards"], batch["next_obs"], batch["terminals"])
        total, (metrics, per_sample) = iql_losses(params, agent.networks(), cfg, *batch_)
        q_ps, v_ps = per_sample["critic"], per_sample["value"]
        for opt in self.opts:
            opt.zero_grad()
        total.backward()
        for opt in self.opts:
            opt.step()
        self.n += 1
        if self.n % cfg.target_update_period == 0:
            with torch.no_grad():
                for t, s in zip(agent.target_critic.parameters(), agent.critic.parameters(), strict=True):
                    t.mul_(1 - cfg.tau_target).add_(cfg.tau_target * s)
        return {**metrics, "priority": q_ps.sqrt(), "priority_cv": (q_ps + v_ps).sqrt()}


def test_adam_update_equals_torch_adam():
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(5, 3, generator=g), torch.randn(4, generator=g)]
    ref = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.Adam(ref, lr=3e-3, betas=(0.8, 0.99), eps=1e-6)
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    counts = [torch.zeros(()) for _ in params]
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in params]
        for r, gr in zip(ref, grads, strict=True):
            r.grad = gr.clone()
        opt.step()
        adam_(params, grads, m, v, counts, 3e-3, (0.8, 0.99), 1e-6)
    for p, r in zip(params, ref, strict=True):
        torch.testing.assert_close(p, r.detach(), rtol=1e-6, atol=1e-7)
    assert counts[0].item() == 5


@pytest.mark.parametrize("period,priority", [(1, "critic"), (3, "critic+value")])
def test_step_equals_an_autograd_update_with_torch_adam(period, priority):
    torch.manual_seed(0)
    # total_steps=4 < 6 steps: the cosine schedule reaches its end inside the test
    cfg = IQLConfig(hidden_dims=(16, 16), target_update_period=period, total_steps=4, compute_priority=True,
                    priority=priority)  # fmt: skip
    a = IQLAgent(OBS, ACT, cfg)
    b = copy.deepcopy(a)
    ref = AutogradReference(b)
    for batch in batches(6):
        ma = a.update(batch)
        mb = ref.update(batch)
        torch.testing.assert_close(ma["critic_loss"], mb["critic_loss"], rtol=1e-5, atol=1e-6)
        want = mb["priority"] if priority == "critic" else mb["priority_cv"]
        torch.testing.assert_close(ma["priority"], want, rtol=1e-5, atol=1e-6)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if x is not None:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5, msg=name)
    assert a.num_updates == 6
    assert a.actor_opt.param_groups[0]["lr"] == pytest.approx(ref.opts[2].param_groups[0]["lr"], abs=1e-12)


def test_sampled_run_equals_updates_on_sampled_batches():
    """``run(7)`` gathers rows inside the step from indices drawn with the sampler; the same
    draws through ``data.sample`` and ``update`` give the same parameters."""
    t = data()
    torch.manual_seed(0)
    a = IQLAgent(OBS, ACT, CFG)
    b = copy.deepcopy(a)
    a.run_updates(t, 7, torch.Generator().manual_seed(1))
    gb = torch.Generator().manual_seed(1)
    for _ in range(7):
        b.update(t.sample(32, gb))
    assert a.num_updates == b.num_updates == 7
    assert_same_state(a, b, 0.0)


def test_training_moves_on_to_new_data_and_lets_the_old_data_go():
    """``run_updates`` on a second dataset samples from it (the same weights as an agent that
    trained on the second dataset from that point), and the first dataset is freed."""
    import gc
    import weakref

    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, CFG)
    first, second = data(), data(400)
    second.rewards.add_(5.0)  # other data: other updates
    agent.run_updates(first, 2, torch.Generator().manual_seed(1))
    twin = copy.deepcopy(agent)
    agent.run_updates(second, 2, torch.Generator().manual_seed(2))
    twin.run_updates(second, 2, torch.Generator().manual_seed(2))
    assert_same_state(agent, twin, 0.0)
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None, "the first dataset is still referenced after training moved to another"
    assert agent.num_updates == 4


def test_compiled_step_equals_eager_step():
    t = data()
    torch.manual_seed(0)
    eager = IQLAgent(OBS, ACT, CFG)
    comp = IQLAgent(OBS, ACT, CFG, mode="compile")
    comp.load_state_dict(eager.state_dict())
    comp.run_updates(t, 3, torch.Generator().manual_seed(1))  # several updates per call
    eager.run_updates(t, 3, torch.Generator().manual_seed(1))
    assert_same_state(eager, comp, 1e-4)
    b = batches(1)[0]
    torch.testing.assert_close(comp.update(b)["critic_loss"], eager.update(b)["critic_loss"], rtol=1e-4, atol=1e-6)


def test_step_follows_a_loaded_checkpoint():
    """``load_full_state`` replaces the optimizers' state tensors and rewinds the update counter;
    the step must use the new tensors and the rewound counter (LR schedule, Polyak period)."""
    torch.manual_seed(0)
    a = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), target_update_period=2, total_steps=8))
    first, second = batches(3, seed=1), batches(3, seed=2)
    for b in first:
        a.update(b)
    saved = copy.deepcopy(a.full_state())
    for b in second:
        a.update(b)
    after = copy.deepcopy(a.state_dict())
    a.load_full_state(copy.deepcopy(saved))
    for b in second:
        a.update(b)
    for k, v in after.items():
        if v is not None:
            torch.testing.assert_close(a.state_dict()[k], v, rtol=0, atol=0, msg=k)
    # and an autograd reference continuing from the same weights agrees
    c = IQLAgent(OBS, ACT, a.config)
    c.load_full_state(copy.deepcopy(saved))
    ref = AutogradReference(c)
    for opt, name in zip(ref.opts, ("value_opt", "critic_opt", "actor_opt"), strict=True):
        opt.load_state_dict(saved[name])
    ref.n = 3
    for b in second:
        ref.update(b)
    for (name, x), y in zip(a.state_dict().items(), c.state_dict().values(), strict=True):
        if x is not None:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5, msg=name)


def test_modes_that_cannot_be_honoured_are_refused():
    seq = IQLConfig(hidden_dims=(8, 8), update_order="sequential")
    for mode in ("compile", "cuda-graph"):
        with pytest.raises(ValueError, match="sequential"):
            IQLAgent(OBS, ACT, seq, mode=mode)
    with pytest.raises(ValueError, match="CUDA device"):
        IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)), mode="cuda-graph")  # joint order, on a CPU
    with pytest.raises(ValueError, match="not one of"):
        IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)), mode="fast")
    agent = IQLAgent(OBS, ACT, seq, mode="auto")  # auto settles for what the order supports, and says so
    assert agent.mode == "eager" and "sequential" in agent.mode_note
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)))
    agent.actor_opt.param_groups[0]["weight_decay"] = 0.01
    with pytest.raises(ValueError, match="weight_decay"):
        agent.update(batches(1)[0])
    assert agent.num_updates == 0


def test_auto_mode_falls_back_to_eager_without_a_compiler(monkeypatch):
    monkeypatch.setattr(runner_mod, "have_cpp_compiler", lambda: False)
    mode, note = resolve_mode("auto", "cpu")
    assert mode == "eager" and "C++ compiler" in note
    monkeypatch.setattr(runner_mod, "have_cpp_compiler", lambda: True)
    assert resolve_mode("auto", "cpu") == ("compile", None)
    assert resolve_mode("auto", "cuda") == ("cuda-graph", None)


def test_a_failed_compilation_says_what_to_do(monkeypatch):
    """Without a C++ compiler Inductor fails on a CPU; the error must say so and name the way out."""
    t = data()

    def broken_compile(fn, **kw):
        def run(*args):
            raise OSError("cannot find 'g++'")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    agent = IQLAgent(OBS, ACT, CFG, mode="compile")
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler.*mode='eager'"):
        agent.run_updates(t, 1)
    assert agent.num_updates == 0


def test_compiled_steps_of_several_agents_update_their_own_agent():
    """One process, several learners (a notebook, a sweep): Dynamo reuses the compiled graph
    across agents, so each must still read and write *its own* agent's tensors, and a different
    hyperparameter must give that agent's update, not the first one's."""
    runs = []
    for expectile in (0.7, 0.7, 0.9):
        torch.manual_seed(0)
        agent = IQLAgent(OBS, ACT, dataclasses.replace(CFG, expectile=expectile), mode="compile")
        ref = IQLAgent(OBS, ACT, agent.config)
        ref.load_state_dict(agent.state_dict())
        runs.append((agent, ref))
    untouched = copy.deepcopy(runs[0][0].state_dict())
    for agent, ref in runs[1:]:
        for batch in batches(4):
            agent.update(batch)
            ref.update(batch)
        assert_same_state(agent, ref, 1e-4)
    for k, v in runs[0][0].state_dict().items():
        if v is not None:
            assert torch.equal(v, untouched[k]), k
    assert not torch.allclose(runs[1][0].value.net[-1].weight, runs[2][0].value.net[-1].weight)


class CpuGraphStandIn:
    """What a CUDA graph does, on a CPU: ``capture`` records the function without changing any
    state (it runs it once for the static outputs, then restores every tensor and the RNG);
    ``replay`` runs it again and writes into those same output tensors."""

    def __init__(self) -> None:
        self.fn = None
        self.captures = 0

    def warmup_stream(self):
        return None

    def stream(self, side):
        import contextlib

        return contextlib.nullcontext()

    def join(self, side) -> None:
        pass

    def get_rng(self):
        return torch.get_rng_state()

    def set_rng(self, state) -> None:
        torch.set_rng_state(state)

    def capture(self, fn, mutable):
        self.captures += 1
        saved, rng = [x.detach().clone() for x in mutable], torch.get_rng_state()
        self.fn, self.static = fn, {k: v.clone() for k, v in fn().items()}
        for x, s in zip(mutable, saved, strict=True):
            x.data.copy_(s)
        torch.set_rng_state(rng)
        return self.static

    def replay(self) -> None:
        for k, v in self.fn().items():
            self.static[k].copy_(v)


def test_cuda_graph_wrapper_replays_the_step_and_keeps_every_output():
    """The CUDA-graph wrapper around the same step, with the capture emulated on the CPU: the
    warm-up leaves no trace, replays equal the eager step on the same default-generator draws,
    and every output of the step comes back, the priority included (the old graph path dropped
    it)."""
    t = data()
    cfg = dataclasses.replace(CFG, compute_priority=True, target_update_period=2, total_steps=5)
    torch.manual_seed(0)
    a = IQLAgent(OBS, ACT, cfg)
    b = copy.deepcopy(a)
    start = copy.deepcopy(a.state_dict())
    backend = CpuGraphStandIn()
    torch.manual_seed(7)
    runner = UpdateRunner(a.networks(), a.config, a.optimizers(), "eager", a.device)
    graph = CudaGraphUpdate(runner, t, 0, backend=backend, warmup=2)
    for k, v in a.state_dict().items():  # warm-up and capture changed nothing
        if v is not None:
            assert torch.equal(v, start[k]), k
    out = graph.run(5, 0)
    torch.manual_seed(7)
    want = b.run_updates(t, 5, None)  # the default generator: the same draws as inside the graph
    a.num_updates = 5  # what IQLAgent.run_updates counts on the host
    assert_same_state(a, b, 1e-6)
    assert set(out) == set(want) and "priority" in out and out["priority"].shape == (32,)
    torch.testing.assert_close(out["priority"], want["priority"])
    assert backend.captures == 1


def test_polyak_every_period_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    src = [torch.randn(3, 2, generator=g)]
    tgt = [torch.randn(3, 2, generator=g)]
    ref = [x.clone() for x in tgt]
    for n in range(1, 7):
        losses.polyak_update_every(tgt, src, 0.1, torch.tensor(float(n)), 3)
        if n % 3 == 0:
            ref = [(1 - 0.1) * r + 0.1 * s for r, s in zip(ref, src, strict=True)]
    torch.testing.assert_close(tgt[0], ref[0])


def test_a_compiled_agent_is_freed_when_dropped():
    """The compiled update is kept on its agent (a cycle the garbage collector frees), not in a
    process-wide table that would keep every agent of a notebook or sweep alive."""
    import gc
    import weakref

    agent = IQLAgent(OBS, ACT, CFG, mode="compile")
    agent.run_updates(data(), 1, torch.Generator().manual_seed(1))
    gone = weakref.ref(agent)
    del agent
    gc.collect()
    assert gone() is None, "the agent is still referenced after it was dropped"


# ------------------------------------------------------------------ against the plain reference, and by hand
def plain_agrees(agent: IQLAgent, plain: PlainIQL, tol: float = 1e-5) -> None:
    """Every network of ``plain`` computes what the agent's computes, on random inputs."""
    g = torch.Generator().manual_seed(9)
    obs, act = torch.randn(16, OBS, generator=g), torch.rand(16, ACT, generator=g) * 2 - 1
    sa = torch.cat([obs, act], 1)
    with torch.no_grad():
        torch.testing.assert_close(plain.value(obs), agent.value(obs), rtol=tol, atol=tol)
        for mine, theirs in ((plain.critics, agent.critic), (plain.target_critics, agent.target_critic)):
            q = theirs(obs, act)
            for i, critic in enumerate(mine):
                torch.testing.assert_close(critic(sa), q[i], rtol=tol, atol=tol)
        std = plain.log_std.clamp(-5, 2).exp()
        logp = torch.distributions.Normal(torch.tanh(plain.actor(obs)), std).log_prob(act).sum(-1)
        torch.testing.assert_close(logp, agent.actor.eval().log_prob(obs, act), rtol=tol, atol=tol)


@pytest.mark.parametrize("steps", [1, 5])
def test_update_equals_plain_reference(steps):
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dims=(32, 32), total_steps=10)
    agent = IQLAgent(OBS, ACT, cfg)
    plain = PlainIQL(OBS, ACT, hidden=32, total_steps=10)
    plain.load_from_agent(agent)
    plain_agrees(agent, plain, 1e-6)  # the same start (up to the rounding of a batched matmul)
    for batch in batches(steps, size=64):
        m = agent.update(batch)
        p = plain.update(batch)
        for key in ("value_loss", "critic_loss", "actor_loss"):
            assert m[key].item() == pytest.approx(p[key].item(), rel=1e-5, abs=1e-6), key
    plain_agrees(agent, plain)  # value, actor, each critic and each target critic after the updates


def test_each_critic_replica_computes_its_own_mlp():
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), num_critics=4))
    critics = [mlp(OBS + ACT, (8, 8), 1) for _ in range(4)]
    targets = [mlp(OBS + ACT, (8, 8), 1) for _ in range(4)]
    copy_agent_weights(agent, mlp(OBS, (8, 8), 1), critics, targets, mlp(OBS, (8, 8), ACT), torch.zeros(ACT))
    obs, act = torch.randn(7, OBS), torch.rand(7, ACT)
    q = agent.critic(obs, act)
    assert q.shape == (4, 7, 1)
    for i in range(4):  # each replica equals its own plain MLP evaluated alone
        torch.testing.assert_close(q[i], critics[i](torch.cat([obs, act], 1)), rtol=1e-6, atol=1e-6)
    assert losses.replica_min(q).shape == (7, 1)


@pytest.mark.parametrize("order", ["joint", "sequential"])
def test_critic_target_uses_the_documented_value(order):
    """joint: r + gamma V_old(s'); sequential: r + gamma V_new(s') (V updated first)."""
    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), update_order=order, value_lr=0.1))
    before = copy.deepcopy(agent)
    batch = batches(1, seed=2, size=64)[0]
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
    three = batches(3, seed=3, size=64)
    target0 = [p.clone() for p in agent.target_critic.parameters()]
    for batch in three[:2]:
        agent.update(batch)
    for p, p0 in zip(agent.target_critic.parameters(), target0, strict=True):
        assert torch.equal(p, p0)  # untouched before the period
    agent.update(three[2])
    for p, p0, src in zip(agent.target_critic.parameters(), target0, agent.critic.parameters(), strict=True):
        torch.testing.assert_close(p, 0.5 * p0 + 0.5 * src, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in agent.target_critic.parameters())


def test_multidimensional_rewards_shapes_and_weights():
    torch.manual_seed(0)
    w = [1.0, -0.5]
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), reward_weights=w, num_critics=3, beta=2.0))
    batch = batches(1, seed=4, size=64, k=2)[0]
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
    m = agent.update(batches(1, seed=5, size=64)[0])
    assert m["weight_mean"].item() == 1.0


def test_priority_is_sqrt_of_per_sample_critic_loss():
    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), compute_priority=True))
    before = copy.deepcopy(agent)
    batch = batches(1, seed=6, size=64)[0]
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
    assert torch.equal(agent.act(obs.numpy()), mode)  # a numpy array is accepted as it is
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


def test_full_state_round_trip_and_shape_mismatch():
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)))
    agent.update(batches(1, seed=0, size=64)[0])
    clone = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)))
    clone.load_full_state(agent.full_state())
    assert clone.num_updates == 1
    for a, b in zip(agent.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="obs_dim=5, act_dim=3"):
        IQLAgent(OBS + 1, ACT, IQLConfig(hidden_dims=(8, 8))).load_full_state(agent.full_state())


# ------------------------------------------------------------------ learning rates: one source, both orders
def test_cosine_actor_lr_schedule():
    assert float(cosine_lr(1.0, 0, 100)) == 1.0
    assert float(cosine_lr(1.0, 50, 100)) == pytest.approx(0.5)
    assert float(cosine_lr(1.0, 100, 100)) == pytest.approx(0.0)
    assert float(cosine_lr(1.0, 150, 100)) == pytest.approx(0.0)
    for order in ("joint", "sequential"):
        agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), total_steps=4, update_order=order))
        lrs = []
        for batch in batches(4, seed=0, size=64):
            agent.update(batch)
            lrs.append(agent.actor_opt.param_groups[0]["lr"])
        assert lrs == pytest.approx([3e-4 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]), order
        assert agent.value_opt.param_groups[0]["lr"] == 3e-4  # only the actor decays


@pytest.mark.parametrize("order", ["joint", "sequential"])
def test_set_lr_is_the_rate_the_update_uses_and_a_hand_written_rate_is_refused(order):
    """``set_lr`` reaches the update in both orders: an agent whose actor rate was set to 1e-2
    ends where an agent made with ``actor_lr=1e-2`` ends, and not where its twin at the default
    rate ends. A rate written into ``param_groups`` by hand is refused (the joint update would not
    read it)."""
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dims=(8, 8), update_order=order, cosine_actor_lr=False)
    agent = IQLAgent(OBS, ACT, cfg)
    default = copy.deepcopy(agent)
    made = IQLAgent(OBS, ACT, dataclasses.replace(cfg, actor_lr=1e-2))
    made.load_state_dict(agent.state_dict())
    agent.set_lr(actor=1e-2)
    assert agent.actor_opt.param_groups[0]["lr"] == 1e-2
    for batch in batches(2, seed=3):
        for a in (agent, made, default):
            a.update(batch)
    assert_same_state(agent, made, 0.0)
    assert not torch.equal(agent.actor.log_std, default.actor.log_std)
    assert agent.actor_opt.param_groups[0]["lr"] == 1e-2
    agent.actor_opt.param_groups[0]["lr"] = 0.5
    with pytest.raises(ValueError, match=r"by hand.*agent\.set_lr\(actor=0\.5\)"):
        agent.update(batches(1)[0])
    assert agent.num_updates == 2


def test_a_copy_of_a_compiled_agent_trains_its_own_networks():
    """``copy.deepcopy`` of an agent that has trained (its compiled update made) gives a learner of
    its own: training the copy leaves the original as it was, and the copy ends where the original
    would."""
    t = data()
    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, CFG, mode="compile")
    agent.run_updates(t, 2, torch.Generator().manual_seed(1))
    twin = copy.deepcopy(agent)
    before = copy.deepcopy(agent.state_dict())
    twin.run_updates(t, 3, torch.Generator().manual_seed(2))
    assert all(torch.equal(v, before[k]) for k, v in agent.state_dict().items() if v is not None)
    agent.run_updates(t, 3, torch.Generator().manual_seed(2))
    assert_same_state(agent, twin, 1e-6)
