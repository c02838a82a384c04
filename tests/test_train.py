"""The trainer: logs, checkpoints, bit-identical resume, and clear errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pandas as pd
import pytest
import torch

from iql_tutorial.data import check_continuous, load_dataset
from iql_tutorial.train import TrainConfig, main, train

torch.set_num_threads(1)
SMALL = {"hidden_dims": (32, 32), "batch_size": 32, "actor_dropout": 0.1}
DATA_ID = "tests/pendulum/tiny-v0"


@pytest.fixture()
def data_root(tiny_minari):
    return tiny_minari


def config(out, **kw):
    base = {
        "dataset": DATA_ID,
        "steps": 60,
        "device": "cpu",
        "out": str(out),
        "log_every": 10,
        "eval_every": 30,
        "eval_episodes": 2,
        "checkpoint_every": 20,
        "iql": dict(SMALL),
    }
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_logs_and_checkpoint(data_root, tmp_path):
    result = train(config(tmp_path / "run"), progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    logs = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert list(logs["step"]) == [10, 20, 30, 40, 50, 60]
    assert logs[["value_loss", "critic_loss", "actor_loss"]].notna().all().all()
    evals = pd.read_csv(tmp_path / "run" / "eval_log.csv")
    assert list(evals["step"]) == [30, 60]
    ret = evals["return_mean"].iloc[-1]  # normalized score with the dataset's reference scores
    assert evals["score_mean"].iloc[-1] == pytest.approx(100 * (ret - -400.0) / (-50.0 - -400.0), abs=1e-6)
    assert result.agent.num_updates == 60
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dataset"] == DATA_ID


class Killed(Exception):
    pass


def test_killed_and_resumed_run_is_bit_identical(data_root, tmp_path, monkeypatch):
    full = train(config(tmp_path / "full"), progress=False)

    from iql_tutorial.agent import IQLAgent

    original = IQLAgent.update

    def dying_update(self, batch):
        if self.num_updates == 47:  # after the checkpoint at step 40 and the log row at 40
            raise Killed()
        return original(self, batch)

    monkeypatch.setattr(IQLAgent, "update", dying_update)
    with pytest.raises(Killed):
        train(config(tmp_path / "killed"), progress=False)
    monkeypatch.setattr(IQLAgent, "update", original)
    assert list(pd.read_csv(tmp_path / "killed" / "train_log.csv")["step"]) == [10, 20, 30, 40]
    resumed = train(config(tmp_path / "killed", resume=True), progress=False)

    for (name, a), b in zip(full.agent.state_dict().items(), resumed.agent.state_dict().values()):
        assert torch.equal(a, b), name
    for opt in ("actor_opt", "critic_opt", "value_opt"):
        sa, sb = getattr(full.agent, opt).state_dict()["state"], getattr(resumed.agent, opt).state_dict()["state"]
        for k in sa:
            assert all(torch.equal(sa[k][f], sb[k][f]) for f in sa[k]), opt
    cols = ["step", "value_loss", "critic_loss", "actor_loss", "actor_lr"]
    pd.testing.assert_frame_equal(full.train_log[cols], resumed.train_log[cols])  # no duplicated or lost rows
    pd.testing.assert_frame_equal(full.eval_log[["step", "return_mean"]], resumed.eval_log[["step", "return_mean"]])


def test_compiled_run_killed_and_resumed_is_bit_identical(data_root, tmp_path, monkeypatch):
    """``--compile`` (the whole update as one compiled function, actor dropout included): a
    killed run resumes to exactly the parameters and logs of an uninterrupted one."""
    from iql_tutorial.whole_step import WholeStep

    full = train(config(tmp_path / "full", compile=True), progress=False)
    original = WholeStep.run_sampled

    def dying_run(self, data, num_steps, generator=None):
        if self.agent.num_updates == 40:  # after the checkpoint at step 40 and the log row at 40
            raise Killed()
        return original(self, data, num_steps, generator)

    monkeypatch.setattr(WholeStep, "run_sampled", dying_run)
    with pytest.raises(Killed):
        train(config(tmp_path / "killed", compile=True), progress=False)
    monkeypatch.setattr(WholeStep, "run_sampled", original)
    resumed = train(config(tmp_path / "killed", compile=True, resume=True), progress=False)
    for (name, a), b in zip(full.agent.state_dict().items(), resumed.agent.state_dict().values()):
        assert torch.equal(a, b), name
    cols = ["step", "value_loss", "critic_loss", "actor_loss", "actor_lr"]
    pd.testing.assert_frame_equal(full.train_log[cols], resumed.train_log[cols])


def test_resume_after_a_half_written_log_line(data_root, tmp_path):
    out = tmp_path / "run"
    train(config(out, steps=40), progress=False)
    with open(out / "train_log.csv", "a") as f:
        f.write("50,0.1,0.")  # a crash in the middle of a line, after the last checkpoint
    train(config(out, steps=40, resume=True), progress=False)
    assert list(pd.read_csv(out / "train_log.csv")["step"]) == [10, 20, 30, 40]


def test_unknown_dataset_lists_local_ids_and_the_build_command(data_root):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("nobody/nothing/none-v0", download=False)
    msg = str(e.value)
    assert "nobody/nothing/none-v0" in msg and DATA_ID in msg and "python -m iql_tutorial.data build" in msg


def test_nan_in_data_names_episode_and_field(data_root):
    with pytest.raises(ValueError, match=r"episode 1 has NaN or inf in 'observations' at step 3"):
        load_dataset("tests/pendulum/nan-v0")


def test_discrete_actions_are_refused():
    with pytest.raises(ValueError, match="continuous"):
        check_continuous(gym.spaces.Discrete(4), "Dataset x")
    with pytest.raises(ValueError, match="unbounded"):
        check_continuous(gym.spaces.Box(-float("inf"), float("inf"), (2,)), "Dataset x")


def test_output_folder_with_another_run_is_protected(data_root, tmp_path):
    out = tmp_path / "run"
    train(config(out, steps=20), progress=False)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train(config(out, steps=20), progress=False)
    with pytest.raises(ValueError, match="seed"):
        train(config(out, steps=20, seed=1, resume=True), progress=False)
    assert (out / "checkpoint.pt").read_bytes() == before  # nothing was damaged
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        train(config(foreign, steps=20), progress=False)


def test_checkpoint_from_another_environment_is_refused(data_root, tmp_path):
    out = tmp_path / "run"
    train(config(out, steps=20), progress=False)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    state["agent"]["obs_dim"] = 17
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(ValueError, match="obs_dim=17"):
        train(config(out, steps=20, resume=True), progress=False)


@pytest.mark.parametrize(
    "args, match", [(["--beta", "0"], "beta"), (["--expectile", "1.5"], "expectile"), (["--steps", "0"], "steps")]
)
def test_cli_reports_bad_hyperparameters(data_root, tmp_path, capsys, args, match):
    assert main(["--dataset", DATA_ID, "--out", str(tmp_path / "r"), *args]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_end_to_end(data_root, tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "iql_tutorial.train",
        "--dataset",
        DATA_ID,
        "--steps",
        "20",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--eval-every",
        "20",
        "--eval-episodes",
        "1",
        "--log-every",
        "10",
        "--batch-size",
        "16",
    ]
    env = {**os.environ, "MINARI_DATASETS_PATH": str(data_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done:" in proc.stdout
    assert Path(out / "eval_log.csv").exists()
    assert len(pd.read_csv(out / "train_log.csv")) == 2
