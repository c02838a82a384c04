"""Fine-tuning: several updates per environment step, the buffer's capacity, refusing to resume
with other settings, and the command line."""

from functools import partial

import helpers
import pandas as pd
import pytest
import torch
from helpers import zero_transitions

from iql_tutorial.runs.finetune import ReplayBuffer, finetune, main

torch.set_num_threads(1)
OFFLINE_STEPS = 30  # conftest's offline_run: 30 steps on tests/pendulum/short-v0 (60 offline transitions)
ft_config = partial(
    helpers.ft_config, online_steps=30, eval_every=15, eval_episodes=1, log_every=10, checkpoint_every=10
)


def test_several_updates_per_environment_step(offline_run, tiny_minari, tmp_path, monkeypatch):
    sampled = []
    original = ReplayBuffer.sample

    def counting_sample(self, batch_size, generator=None):
        sampled.append((len(self), batch_size))
        return original(self, batch_size, generator)

    monkeypatch.setattr(ReplayBuffer, "sample", counting_sample)
    three = finetune(ft_config(offline_run, tmp_path / "k3", updates_per_step=3), progress=False)
    assert three.agent.num_updates == OFFLINE_STEPS + 3 * 30
    assert len(three.buffer) == 60 + 30  # still one transition per environment step
    # three batches of 16 per environment step, each from the buffer as it is after that step
    assert sampled == [(60 + t, 16) for t in range(1, 31) for _ in range(3)]
    assert list(three.train_log["step"]) == [10, 20, 30]
    sampled.clear()
    one = finetune(ft_config(offline_run, tmp_path / "k1"), progress=False)
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
    finetune(ft_config(offline_run, out), progress=False)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    with pytest.raises(ValueError, match="differs"):
        finetune(ft_config(offline_run, out, resume=True, **change), progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        finetune(ft_config(offline_run, out), progress=False)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    again = finetune(ft_config(offline_run, out, resume=True), progress=False)  # same settings: finished, kept
    assert again.agent.num_updates == OFFLINE_STEPS + 30
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.suffix == ".pt"} == {
        k: v for k, v in before.items() if k.endswith(".pt")
    }


def test_foreign_output_folder_is_refused(offline_run, tiny_minari, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        finetune(ft_config(offline_run, out), progress=False)
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
    result = finetune(ft_config(offline_run, tmp_path / "ft", online_steps=45), progress=False)
    ckpt = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)
    assert ckpt["env_step"] == 45
    for k, v in result.agent.state_dict().items():
        if v is not None:
            assert torch.equal(ckpt["agent"]["networks"][k], v), k
    again = finetune(ft_config(offline_run, tmp_path / "ft", online_steps=45, resume=True), progress=False)
    assert len(again.buffer) == len(result.buffer)  # a finished run resumes to itself: nothing is added
