"""Offline-to-online fine-tuning: collects into the mixed buffer, trains on it, resumes exactly."""

from functools import partial

import pandas as pd
import pytest
import torch
from helpers import Killed, ft_config, zero_transitions

from iql_tutorial.runs.finetune import ReplayBuffer, finetune

torch.set_num_threads(1)
# fine-tunes conftest's offline_run (30 steps on tests/pendulum/short-v0)
cfg = partial(ft_config, online_steps=90, eval_every=45, eval_episodes=1, log_every=15, checkpoint_every=20)


def test_online_loop_collects_stores_and_trains_on_the_mixed_buffer(offline_run, tiny_minari, tmp_path):
    before = torch.load(offline_run / "checkpoint.pt", weights_only=True)["agent"]["networks"]
    result = finetune(cfg(offline_run, tmp_path / "ft"), progress=False)
    buf = result.buffer
    assert buf.offline_size == 60 and len(buf) == 60 + 90  # offline data kept, 90 online transitions added
    online = buf.online_part()
    assert online["actions"].abs().max() <= 1.0  # stored in the policy's [-1, 1] units
    assert online["timeouts"].sum() == 3  # Pendulum truncates every 30 steps; never terminal
    assert online["terminals"].sum() == 0
    # the rewards are transformed exactly like the offline ones
    assert result.dataset.reward_scale != 1.0
    assert result.agent.num_updates == 30 + 90  # one update per environment step, after the offline 30
    assert result.agent.actor_opt.param_groups[0]["lr"] == pytest.approx(3e-4)  # constant online
    assert any(not torch.equal(before[k], v) for k, v in result.agent.state_dict().items() if v is not None)
    assert list(result.eval_log["step"]) == [0, 45, 90]  # step 0 is the offline policy


def test_buffer_samples_only_what_is_stored():
    buf = ReplayBuffer(zero_transitions(5), capacity=7)
    buf.add([1.0, 1.0], [0.5], 2.0, [1.0, 1.0], True, False, 1)
    g = torch.Generator().manual_seed(0)
    rewards = buf.sample(4000, g)["rewards"]
    assert set(rewards.unique().tolist()) == {0.0, 2.0}
    assert (rewards == 2.0).float().mean().item() == pytest.approx(1 / 6, abs=0.03)
    buf.add([1.0, 1.0], [0.5], 2.0, [1.0, 1.0], True, False, 1)
    with pytest.raises(RuntimeError, match="full"):
        buf.add([1.0, 1.0], [0.5], 2.0, [1.0, 1.0], True, False, 1)


def test_killed_fine_tuning_resumes_exactly(offline_run, tiny_minari, tmp_path, monkeypatch):
    full = finetune(cfg(offline_run, tmp_path / "full"), progress=False)
    from iql_tutorial.runs.finetune import ReplayBuffer as RB

    original = RB.add

    def dying_add(self, *a, **k):
        if self.size - self.offline_size == 70:  # after the checkpoint at the end of episode 2 (step 60)
            raise Killed()
        return original(self, *a, **k)

    monkeypatch.setattr(RB, "add", dying_add)
    with pytest.raises(Killed):
        finetune(cfg(offline_run, tmp_path / "killed"), progress=False)
    monkeypatch.setattr(RB, "add", original)
    resumed = finetune(cfg(offline_run, tmp_path / "killed", resume=True), progress=False)
    for (name, a), b in zip(full.agent.state_dict().items(), resumed.agent.state_dict().values(), strict=True):
        if a is not None:
            assert torch.equal(a, b), name
    for k, v in full.buffer.online_part().items():
        assert torch.equal(v, resumed.buffer.online_part()[k]), k
    pd.testing.assert_frame_equal(full.eval_log[["step", "return_mean"]], resumed.eval_log[["step", "return_mean"]])
    pd.testing.assert_frame_equal(full.train_log[["step", "critic_loss"]], resumed.train_log[["step", "critic_loss"]])


def test_missing_offline_run_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="train offline first"):
        finetune(cfg(tmp_path / "nothing", tmp_path / "ft"), progress=False)
