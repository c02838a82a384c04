"""The whole-step update (``iql_tutorial.whole_step``) against the eager ``IQLAgent.update``.

Tolerances: the eager whole step computes the same arithmetic in a different order (Adam's bias
corrections in float32 tensors, gradients from ``torch.func.grad``), so parameters agree to 1e-5
after 6 steps; the compiled one fuses kernels and agrees to 1e-4.
"""

import copy

import pytest
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.bench import synthetic_transitions
from iql_tutorial.data import Transitions
from iql_tutorial.fast import StepRunner
from iql_tutorial.whole_step import WholeStep, adam_update_

torch.set_num_threads(1)
OBS, ACT = 6, 2


def data(n: int = 500) -> Transitions:
    return synthetic_transitions(n, "cpu", obs_dim=OBS, act_dim=ACT, terminal_rate=0.1)


def batches(t: Transitions, n: int, seed: int = 1, size: int = 32) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [t.sample(size, g) for _ in range(n)]


def assert_same_state(a: IQLAgent, b: IQLAgent, tol: float) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if x is not None:
            torch.testing.assert_close(x, y, rtol=tol, atol=tol, msg=name)
    for opt in ("value_opt", "critic_opt", "actor_opt"):
        sa, sb = getattr(a, opt).state_dict()["state"], getattr(b, opt).state_dict()["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for key in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(sa[i][key], sb[i][key], rtol=tol, atol=tol, msg=f"{opt} {i} {key}")
    assert a.num_updates == b.num_updates


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
        for r, gr in zip(ref, grads):
            r.grad = gr.clone()
        opt.step()
        adam_update_(params, grads, m, v, steps, 3e-3, 0.8, 0.99, 1e-6)
    for p, r in zip(params, ref):
        torch.testing.assert_close(p, r.detach(), rtol=1e-6, atol=1e-7)
    assert steps[0].item() == 5


@pytest.mark.parametrize("period", [1, 3])
def test_eager_whole_step_equals_agent_update(period):
    t = data()
    torch.manual_seed(0)
    # total_steps=4 < 6 steps: the cosine schedule reaches its end inside the test
    cfg = IQLConfig(hidden_dims=(16, 16), target_update_period=period, total_steps=4, compute_priority=True)
    a = IQLAgent(OBS, ACT, cfg)
    b = copy.deepcopy(a)
    whole = WholeStep(a, compile=False)
    for batch in batches(t, 6):
        mw = whole.step(batch)
        mb = b.update(batch)
    assert mw.keys() == mb.keys()
    for k in mb:
        torch.testing.assert_close(mw[k], mb[k], rtol=1e-5, atol=1e-6, msg=k)
    assert_same_state(a, b, 1e-5)
    assert a.actor_opt.param_groups[0]["lr"] == pytest.approx(b.actor_opt.param_groups[0]["lr"])


def test_compiled_whole_step_equals_agent_update():
    t = data()
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dims=(16, 16), batch_size=32, target_update_period=2, total_steps=10)
    a = IQLAgent(OBS, ACT, cfg)
    b = copy.deepcopy(a)
    runner = StepRunner(a, t, torch.Generator().manual_seed(1), whole_step=True)
    runner.run(2)
    runner.run(3)  # several updates per call; the compiled graph is reused, not rebuilt
    for batch in batches(t, 5):
        b.update(batch)
    assert_same_state(a, b, 1e-4)
    torch.testing.assert_close(
        runner.run(1)["critic_loss"], b.update(batches(t, 6)[-1])["critic_loss"], rtol=1e-4, atol=1e-6
    )


def test_whole_step_follows_a_loaded_checkpoint():
    """``load_full_state`` replaces the optimizers' state tensors and rewinds the update counter;
    the whole step must use the new tensors and the rewound counter (LR schedule, Polyak period)."""
    t = data()
    torch.manual_seed(0)
    a = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), target_update_period=2, total_steps=8))
    whole = WholeStep(a, compile=False)
    first, second = batches(t, 3, seed=1), batches(t, 3, seed=2)
    whole.run(first)
    saved = copy.deepcopy(a.full_state())
    whole.run(second)
    after = copy.deepcopy(a.state_dict())
    a.load_full_state(copy.deepcopy(saved))  # (Adam's load_state_dict keeps the step tensors it is given)
    whole.run(second)
    for k, v in after.items():
        if v is not None:
            torch.testing.assert_close(a.state_dict()[k], v, rtol=0, atol=0, msg=k)
    # and an eager agent continuing from the same checkpoint agrees
    b = IQLAgent(OBS, ACT, a.config)
    b.load_full_state(copy.deepcopy(saved))
    for batch in second:
        b.update(batch)
    assert_same_state(a, b, 1e-5)


def test_whole_step_refuses_what_it_does_not_implement():
    t = data()
    with pytest.raises(ValueError, match="sequential"):
        WholeStep(IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), update_order="sequential")))
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8)))
    agent.actor_opt.param_groups[0]["weight_decay"] = 0.01
    with pytest.raises(ValueError, match="weight_decay"):
        WholeStep(agent, compile=False)
    with pytest.raises(ValueError, match="one of"):
        StepRunner(IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8))), t, whole_step=True, cuda_graph=True)


def test_a_failed_compilation_says_what_to_do(monkeypatch):
    """Without a C++ compiler Inductor fails on a CPU; the error must say so and name the way out."""
    t = data()
    agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8), batch_size=16))
    whole = WholeStep(agent)

    def broken(*args):
        raise OSError("cannot find 'g++'")

    monkeypatch.setattr(whole, "_fn", broken)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler.*without\\s+--compile"):
        whole.run_sampled(t, 1)
    assert agent.num_updates == 0


def test_compiled_steps_of_several_agents_update_their_own_agent():
    """One process, several learners (a notebook, a sweep): Dynamo reuses the compiled graph
    across WholeStep instances, so each must still read and write *its own* agent's tensors,
    and a different hyperparameter must give that agent's update, not the first one's."""
    t = data()
    runs = []
    for expectile in (0.7, 0.7, 0.9):
        torch.manual_seed(0)
        agent = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), batch_size=32, expectile=expectile))
        ref = copy.deepcopy(agent)
        runs.append((agent, ref, WholeStep(agent)))
    untouched = copy.deepcopy(runs[0][0].state_dict())
    for agent, ref, whole in runs[1:]:
        whole.run(batches(t, 4))
        for batch in batches(t, 4):
            ref.update(batch)
        assert_same_state(agent, ref, 1e-4)
    for k, v in runs[0][0].state_dict().items():
        if v is not None:
            assert torch.equal(v, untouched[k]), k
    # the two expectiles gave different value networks from the same start and batches
    assert not torch.allclose(runs[1][0].value.net[-1].weight, runs[2][0].value.net[-1].weight)
