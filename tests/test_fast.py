"""The fast paths give the same parameters as the eager update on the same batch sequence.

Tolerances: the compiled path reorders float operations (fused kernels), so parameters agree to
1e-4 relative after 5 steps; the device-step body (the code the CUDA graph captures, run
eagerly here) uses the same kernels as eager and agrees to 1e-5.
"""

import copy

import pytest
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.bench import synthetic_transitions
from iql_tutorial.data import Transitions
from iql_tutorial.fast import StepRunner

torch.set_num_threads(1)
OBS, ACT = 6, 2


def data(n: int = 500) -> Transitions:
    return synthetic_transitions(n, "cpu", obs_dim=OBS, act_dim=ACT, terminal_rate=0.1)


def assert_same_params(a: IQLAgent, b: IQLAgent, tol: float) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if x is not None:
            torch.testing.assert_close(x, y, rtol=tol, atol=tol, msg=name)


def test_multi_update_call_equals_single_updates():
    t = data()
    torch.manual_seed(0)
    a = IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(16, 16), batch_size=32))
    b = copy.deepcopy(a)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    StepRunner(a, t, ga).run(7)
    for _ in range(7):
        b.update(t.sample(32, gb))
    assert a.num_updates == b.num_updates == 7
    assert_same_params(a, b, 0.0)


@pytest.mark.parametrize("period", [1, 3])
def test_device_step_body_equals_eager_update(period):
    """The function the CUDA graph captures (device-side LR schedule, device-side Polyak period,
    fused Adam with a tensor learning rate), run eagerly on the CPU."""
    t = data()
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dims=(16, 16), batch_size=32, total_steps=6, target_update_period=period)
    a = IQLAgent(OBS, ACT, cfg)
    b = copy.deepcopy(a)
    runner = StepRunner(a, t)
    runner._prepare_device_step(capturable=False)
    torch.manual_seed(5)
    for _ in range(6):
        m = runner._graph_step()
    torch.manual_seed(5)
    mb = b.train_steps(t, 6, None)  # same default-generator samples
    assert_same_params(a, b, 1e-5)
    torch.testing.assert_close(m["critic_loss"], mb["critic_loss"], rtol=1e-5, atol=1e-6)
    assert runner.actor_lr.item() == pytest.approx(b.actor_opt.param_groups[0]["lr"], rel=1e-5)


def test_compiled_update_equals_eager():
    t = data()
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dims=(16, 16), batch_size=32)
    eager = IQLAgent(OBS, ACT, cfg)
    compiled = IQLAgent(OBS, ACT, cfg, compile=True)
    compiled.load_state_dict(eager.state_dict())
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(5):
        me = eager.update(t.sample(32, ga))
        mc = compiled.update(t.sample(32, gb))
        torch.testing.assert_close(mc["critic_loss"], me["critic_loss"], rtol=1e-4, atol=1e-6)
    assert_same_params(eager, compiled, 1e-4)


def test_graph_path_refuses_cpu_and_sequential():
    t = data()
    with pytest.raises(ValueError, match="CUDA"):
        StepRunner(IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8))), t, cuda_graph=True)
    with pytest.raises(ValueError, match="cuda_graph=True"):
        StepRunner(IQLAgent(OBS, ACT, IQLConfig(hidden_dims=(8, 8))), t, bf16=True)
