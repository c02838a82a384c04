"""The one IQL update (``iql_tutorial.core.update``) and its three runners (``speed.runner``).

The step is checked against an independent joint update written here with autograd
(``.backward()``) and ``torch.optim.Adam`` (and against ``core.plain`` in test_agent.py).

Tolerances: the step computes the same arithmetic in another order (Adam's bias corrections in
float32 tensors, gradients from ``torch.func.grad``), so parameters agree to 1e-5 after 6 steps;
the compiled step fuses kernels and agrees to 1e-4. Every compiled test uses the same shapes
and settings (``CFG``), so Dynamo compiles the graph once per process and the tests reuse it.
"""

import copy
import dataclasses

import pytest
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core import agent as agent_mod
from iql_tutorial.core import losses
from iql_tutorial.core.update import NETWORKS, adam_, cosine_lr, iql_losses
from iql_tutorial.data import Transitions
from iql_tutorial.data.transitions import synthetic_transitions
from iql_tutorial.speed.runner import CudaGraphUpdate, UpdateRunner, resolve_mode

torch.set_num_threads(1)
OBS, ACT = 6, 2
CFG = IQLConfig(hidden_dims=(16, 16), batch_size=32)  # the one compiled configuration


def data(n: int = 500) -> Transitions:
    return synthetic_transitions(n, "cpu", obs_dim=OBS, act_dim=ACT, terminal_rate=0.1)


def batches(t: Transitions, n: int, seed: int = 1, size: int = 32) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [t.sample(size, g) for _ in range(n)]


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
        total, (metrics, (q_ps, v_ps)) = iql_losses(params, agent, *batch_)
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
    steps = [torch.zeros(()) for _ in params]
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g) for p in params]
        for r, gr in zip(ref, grads, strict=True):
            r.grad = gr.clone()
        opt.step()
        adam_(params, grads, m, v, steps, 3e-3, (0.8, 0.99), 1e-6)
    for p, r in zip(params, ref, strict=True):
        torch.testing.assert_close(p, r.detach(), rtol=1e-6, atol=1e-7)
    assert steps[0].item() == 5


@pytest.mark.parametrize("period,priority", [(1, "critic"), (3, "critic+value")])
def test_step_equals_an_autograd_update_with_torch_adam(period, priority):
    t = data()
    torch.manual_seed(0)
    # total_steps=4 < 6 steps: the cosine schedule reaches its end inside the test
    cfg = IQLConfig(hidden_dims=(16, 16), target_update_period=period, total_steps=4, compute_priority=True,
                    priority=priority)  # fmt: skip
    a = IQLAgent(OBS, ACT, cfg)
    b = copy.deepcopy(a)
    ref = AutogradReference(b)
    for batch in batches(t, 6):
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
    UpdateRunner(a, t, torch.Generator().manual_seed(1)).run(7)
    gb = torch.Generator().manual_seed(1)
    for _ in range(7):
        b.update(t.sample(32, gb))
    assert a.num_updates == b.num_updates == 7
    assert_same_state(a, b, 0.0)


def test_runner_is_kept_for_the_same_data_and_lets_old_data_go():
    """``agent.runner`` reuses the runner while the data and generator stay the same, and drops
    it when they change: a dataset the agent moved on from is freed (it used to stay alive in a
    cache keyed by ``id``), and training on the new data samples from the new data."""
    import gc
    import weakref

    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, CFG)
    first, g = data(), torch.Generator().manual_seed(1)
    assert agent.runner(first, g) is agent.runner(first, g)
    agent.run_updates(first, 2, g)
    gone = weakref.ref(first)
    second = data(400)
    agent.run_updates(second, 2, g)
    assert agent.runner(second, g).data is second
    del first
    gc.collect()
    assert gone() is None, "the first dataset is still referenced after training moved to another"
    assert agent.runner(second, torch.Generator()) is not agent.runner(second, g)  # a new generator: a new runner
    assert agent.num_updates == 4


def test_compiled_step_equals_eager_step():
    t = data()
    torch.manual_seed(0)
    eager = IQLAgent(OBS, ACT, CFG)
    comp = IQLAgent(OBS, ACT, CFG, mode="compile")
    comp.load_state_dict(eager.state_dict())
    comp.runner(t, torch.Generator().manual_seed(1)).run(3)  # several updates per call
    eager.run_updates(t, 3, torch.Generator().manual_seed(1))
    assert_same_state(eager, comp, 1e-4)
    b = batches(t, 1)[0]
    torch.testing.assert_close(comp.update(b)["critic_loss"], eager.update(b)["critic_loss"], rtol=1e-4, atol=1e-6)


def test_step_follows_a_loaded_checkpoint():
    """``load_full_state`` replaces the optimizers' state tensors and rewinds the update counter;
    the step must use the new tensors and the rewound counter (LR schedule, Polyak period)."""
    t = data()
    torch.manual_seed(0)
    a = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), target_update_period=2, total_steps=8))
    first, second = batches(t, 3, seed=1), batches(t, 3, seed=2)
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
        UpdateRunner(agent)


def test_auto_mode_falls_back_to_eager_without_a_compiler(monkeypatch):
    monkeypatch.setattr(agent_mod, "have_cpp_compiler", lambda: False)
    mode, note = resolve_mode("auto", "cpu")
    assert mode == "eager" and "C++ compiler" in note
    monkeypatch.setattr(agent_mod, "have_cpp_compiler", lambda: True)
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
    t = data()
    runs = []
    for expectile in (0.7, 0.7, 0.9):
        torch.manual_seed(0)
        agent = IQLAgent(OBS, ACT, dataclasses.replace(CFG, expectile=expectile), mode="compile")
        ref = IQLAgent(OBS, ACT, agent.config)
        ref.load_state_dict(agent.state_dict())
        runs.append((agent, ref))
    untouched = copy.deepcopy(runs[0][0].state_dict())
    for agent, ref in runs[1:]:
        for batch in batches(t, 4):
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
    graph = CudaGraphUpdate(UpdateRunner(a), t, backend=backend, warmup=2)
    for k, v in a.state_dict().items():  # warm-up and capture changed nothing
        if v is not None:
            assert torch.equal(v, start[k]), k
    out = graph.run(5)
    torch.manual_seed(7)
    want = b.run_updates(t, 5, None)  # the default generator: the same draws as inside the graph
    assert_same_state(a, b, 1e-6)
    assert set(out) == set(want) and "priority" in out and out["priority"].shape == (32,)
    torch.testing.assert_close(out["priority"], want["priority"])
    assert backend.captures == 1 and a.num_updates == 5
    assert a.actor_opt.param_groups[0]["lr"] == pytest.approx(float(cosine_lr(cfg.actor_lr, 4, 5)))


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
    agent.runner(data(), torch.Generator().manual_seed(1))
    assert agent.compiled_update is not None
    gone = weakref.ref(agent)
    del agent
    gc.collect()
    assert gone() is None, "the agent is still referenced after it was dropped"
