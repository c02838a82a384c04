"""Offline-to-online fine-tuning: collects into the mixed buffer, trains on it at the actor's base
learning rate, resumes exactly; several updates per environment step, the buffer's capacity,
refusing to resume with other settings, and the command line."""

from functools import partial

import pandas as pd
import pytest
import torch
from helpers import Killed, ft_config, zero_transitions

from iql_tutorial.core import update as update_module
from iql_tutorial.runs.finetune import ReplayBuffer, finetune, main

torch.set_num_threads(1)
# fine-tunes conftest's offline_run (30 steps on tests/pendulum/short-v0, 60 offline transitions)
OFFLINE_STEPS = 30
cfg = partial(ft_config, online_steps=90, eval_every=45, eval_episodes=1, log_every=15, checkpoint_every=20)
short = partial(ft_config, online_steps=30, eval_every=15, eval_episodes=1, log_every=10, checkpoint_every=10)


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


def test_the_online_updates_use_the_actors_base_learning_rate(offline_run, tiny_minari, tmp_path, monkeypatch):
    """The offline run's cosine schedule ended near 0; every online update runs the actor at its
    base rate again (the rate each update used, read where the update computes it)."""
    offline = torch.load(offline_run / "checkpoint.pt", weights_only=True)["agent"]
    assert offline["actor_opt"]["param_groups"][0]["lr"] < 1e-5  # where the offline schedule ended
    used = []
    original = update_module.actor_lr_at

    def spy(cfg, done):
        rate = original(cfg, done)
        used.append(float(rate))
        return rate

    monkeypatch.setattr(update_module, "actor_lr_at", spy)
    result = finetune(short(offline_run, tmp_path / "ft"), progress=False)
    assert len(used) == 30 and used == [pytest.approx(3e-4)] * 30
    assert list(result.train_log["actor_lr"]) == [pytest.approx(3e-4)] * 3


def test_several_updates_per_environment_step(offline_run, tiny_minari, tmp_path, monkeypatch):
    sampled = []
    original = ReplayBuffer.sample

    def counting_sample(self, batch_size, generator=None):
        sampled.append((len(self), batch_size))
        return original(self, batch_size, generator)

    monkeypatch.setattr(ReplayBuffer, "sample", counting_sample)
    three = finetune(short(offline_run, tmp_path / "k3", updates_per_step=3), progress=False)
    assert three.agent.num_updates == OFFLINE_STEPS + 3 * 30
    assert len(three.buffer) == 60 + 30  # still one transition per environment step
    # three batches of 16 per environment step, each from the buffer as it is after that step
    assert sampled == [(60 + t, 16) for t in range(1, 31) for _ in range(3)]
    assert list(three.train_log["step"]) == [10, 20, 30]
    sampled.clear()
    one = finetune(short(offline_run, tmp_path / "k1"), progress=False)
    assert one.agent.num_updates == OFFLINE_STEPS + 30 and len(sampled) == 30
    assert any(not torch.equal(a, b) for a, b in zip(one.agent.parameters(), three.agent.parameters(), strict=True))
    assert three.buffer.capacity == 60 + 30  # the offline data plus every online step


def test_buffer_capacity_below_the_offline_data_is_refused():
    with pytest.raises(ValueError, match=r"capacity 4 is smaller than the offline data \(5 transitions\)"):
        ReplayBuffer(zero_transitions(5), capacity=4)
    exact = ReplayBuffer(zero_transitions(5), capacity=5)  # room for the offline data only
    assert len(exact) == 5
    with pytest.raises(RuntimeError, match="full"):
        exact.add([0.0, 0.0], [0.0], 0.0, [0.0, 0.0], False, False, 1)
    assert len(exact) == 5


@pytest.mark.parametrize(
    "change", [{"updates_per_step": 2}, {"online_steps": 40}, {"seed": 1}, {"eval_every": 10}, {"log_every": 5}]
)
def test_resume_with_other_settings_is_refused_and_nothing_is_touched(offline_run, tiny_minari, tmp_path, change):
    out = tmp_path / "ft"
    finetune(short(offline_run, out), progress=False)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    with pytest.raises(ValueError, match="differs"):
        finetune(short(offline_run, out, resume=True, **change), progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        finetune(short(offline_run, out), progress=False)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    again = finetune(short(offline_run, out, resume=True), progress=False)  # same settings: finished, kept
    assert again.agent.num_updates == OFFLINE_STEPS + 30
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.suffix == ".pt"} == {
        k: v for k, v in before.items() if k.endswith(".pt")
    }


def test_foreign_output_folder_is_refused(offline_run, tiny_minari, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        finetune(short(offline_run, out), progress=False)
    assert [f.name for f in out.iterdir()] == ["notes.txt"]


def test_cli_runs_and_reports_errors(offline_run, tiny_minari, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--offline-run", str(offline_run), "--online-steps", "30", "--out", str(out), "--device", "cpu",
            "--eval-every", "15", "--eval-episodes", "1", "--log-every", "10", "--checkpoint-every", "10",
            "--updates-per-step", "2", "--mode", "eager"]  # fmt: skip
    assert main(args) == 0
    assert "done:" in capsys.readouterr().out
    assert list(pd.read_csv(out / "eval_log.csv")["step"]) == [0, 15, 30]
    assert list(pd.read_csv(out / "train_log.csv")["step"]) == [10, 20, 30]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["agent"]["num_updates"] == OFFLINE_STEPS + 2 * 30 and int(ckpt["env_step"]) == 30

    assert main(args) == 2  # the run exists: --resume or another --out
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # finished: resuming changes nothing
    capsys.readouterr()
    assert main(["--offline-run", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "train offline first" in capsys.readouterr().err
    assert main(["--offline-run", str(offline_run), "--online-steps", "0", "--out", str(tmp_path / "y")]) == 2
    assert "online_steps" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_budget_ending_mid_episode_still_checkpoints_the_final_agent(offline_run, tiny_minari, tmp_path):
    """Checkpoints are written at episode ends (exact resume); when the budget ends inside an
    episode (45 steps, episodes of 30), the last checkpoint must still hold the final agent."""
    result = finetune(short(offline_run, tmp_path / "ft", online_steps=45), progress=False)
    ckpt = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)
    assert ckpt["env_step"] == 45
    for k, v in result.agent.state_dict().items():
        if v is not None:
            assert torch.equal(ckpt["agent"]["networks"][k], v), k
    again = finetune(short(offline_run, tmp_path / "ft", online_steps=45, resume=True), progress=False)
    assert len(again.buffer) == len(result.buffer)  # a finished run resumes to itself: nothing is added
