"""The trainer: logs, checkpoints, bit-identical resume, and clear errors for bad input."""

import dataclasses
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import gymnasium as gym
import pandas as pd
import pytest
import torch
from helpers import Killed, train_config

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.data import check_continuous, load_dataset
from iql_tutorial.runs.train import TrainConfig, main, train

torch.set_num_threads(1)
SMALL = {"hidden_dims": (32, 32), "batch_size": 32, "actor_dropout": 0.1}
DATA_ID = "tests/pendulum/tiny-v0"


@pytest.fixture()
def data_root(tiny_minari):
    return tiny_minari


config = partial(train_config, dataset=DATA_ID, steps=60, log_every=10, eval_every=30, eval_episodes=2,
                 checkpoint_every=20, iql=IQLConfig(**SMALL))  # fmt: skip


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


def dying(original, at: int):
    """``IQLAgent.run_updates`` (the trainer's way into the update) that raises once the agent
    reached ``at`` updates: the run dies at a log boundary, after the checkpoint at 40."""

    def run(self, data, count, generator=None):
        if self.num_updates >= at:
            raise Killed()
        return original(self, data, count, generator)

    return run


def assert_same_run(full, resumed) -> None:
    for (name, a), b in zip(full.agent.state_dict().items(), resumed.agent.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for opt in ("actor_opt", "critic_opt", "value_opt"):
        sa, sb = getattr(full.agent, opt).state_dict()["state"], getattr(resumed.agent, opt).state_dict()["state"]
        for k in sa:
            assert all(torch.equal(sa[k][f], sb[k][f]) for f in sa[k]), opt
    cols = ["step", "value_loss", "critic_loss", "actor_loss", "actor_lr"]
    pd.testing.assert_frame_equal(full.train_log[cols], resumed.train_log[cols])  # no duplicated or lost rows
    pd.testing.assert_frame_equal(full.eval_log[["step", "return_mean"]], resumed.eval_log[["step", "return_mean"]])


@pytest.mark.parametrize("mode", ["eager", "compile"])
def test_killed_and_resumed_run_is_bit_identical(data_root, tmp_path, monkeypatch, mode):
    """Eager, and compiled (the CPU default; actor dropout included)."""
    full = train(config(tmp_path / "full", mode=mode), progress=False)
    original = IQLAgent.run_updates
    monkeypatch.setattr(IQLAgent, "run_updates", dying(original, 50))
    with pytest.raises(Killed):
        train(config(tmp_path / "killed", mode=mode), progress=False)
    monkeypatch.setattr(IQLAgent, "run_updates", original)
    assert list(pd.read_csv(tmp_path / "killed" / "train_log.csv")["step"]) == [10, 20, 30, 40, 50]
    resumed = train(config(tmp_path / "killed", mode=mode, resume=True), progress=False)
    assert_same_run(full, resumed)


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
    assert "nobody/nothing/none-v0" in msg and DATA_ID in msg and "python -m iql_tutorial data build" in msg


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
    state = torch.load(out / "checkpoint.pt", weights_only=True)
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
        "iql_tutorial",
        "train",
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
        *("--batch-size", "32", "--hidden-dims", "32", "32", "--actor-dropout", "0.1"),  # SMALL: cached graph
    ]
    env = {**os.environ, "MINARI_DATASETS_PATH": str(data_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done:" in proc.stdout
    assert Path(out / "eval_log.csv").exists()
    assert len(pd.read_csv(out / "train_log.csv")) == 2


def test_a_checkpoint_carrying_code_is_refused_and_nothing_runs(data_root, tmp_path):
    """Checkpoints are data: one that carries a pickled callable is refused before it runs."""
    out = tmp_path / "run"
    train(config(out, steps=20), progress=False)
    marker = tmp_path / "ran.txt"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "code from a checkpoint ran"))

    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["extra"] = Payload()
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(ValueError, match="nothing in it ran"):
        train(config(out, steps=20, resume=True), progress=False)
    assert not marker.exists()


def test_cli_exposes_every_iql_field_with_its_doc():
    from iql_tutorial.runs.train import build_parser

    helps = {a.dest: a.help for a in build_parser()._actions}
    for f in dataclasses.fields(IQLConfig):
        if f.name != "total_steps":
            assert f.name in helps and len(helps[f.name]) > 20, f.name
    for f in dataclasses.fields(TrainConfig):
        if f.name != "iql":
            assert f.name in helps, f.name


def test_cli_settings_override_the_preset_and_unset_ones_keep_it(data_root):
    from iql_tutorial.runs.train import parse_args

    maze = parse_args(["--dataset", "iqlbook/pointmaze/umaze-v0"])
    assert (maze.iql.expectile, maze.iql.beta, maze.resolved_reward_norm()) == (0.9, 10.0, "shift")
    mine = parse_args(["--dataset", "iqlbook/pointmaze/umaze-v0", "--beta", "2", "--hidden-dims", "64", "64",
                       "--no-cosine-actor-lr", "--reward-norm", "none"])  # fmt: skip
    assert (mine.iql.expectile, mine.iql.beta, mine.iql.hidden_dims) == (0.9, 2.0, (64, 64))
    assert mine.iql.cosine_actor_lr is False and mine.resolved_reward_norm() == "none"
    assert parse_args(["--dataset", DATA_ID]).iql.expectile == 0.7


@pytest.mark.parametrize(
    "args, match",
    [(["--device", "tpu"], "device='tpu' is not supported"), (["--mode", "cuda-graph"], "CUDA device")],
)
def test_cli_bad_device_and_mode_are_one_line_errors(data_root, tmp_path, capsys, args, match):
    assert main(["--dataset", DATA_ID, "--out", str(tmp_path / "r"), "--steps", "5", *args]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_out_naming_an_existing_file_is_a_one_line_error(data_root, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep me")
    assert main(["--dataset", DATA_ID, "--out", str(f), "--steps", "5"]) == 2
    assert "is an existing file" in capsys.readouterr().err and f.read_text() == "keep me"


def test_training_stays_off_the_dataset_making_code():
    """``import iql_tutorial.runs.train`` (and a run's imports) must not pull in h5py or the SAC code."""
    code = (
        "import sys, iql_tutorial.runs.train, iql_tutorial.runs.finetune, iql_tutorial.runs.sweep\n"
        "bad = [m for m in sys.modules if m == 'h5py' or m.startswith('h5py.') or m.startswith('iql_tutorial.datasets')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("order,mode", [("sequential", []), ("joint", ["--mode", "eager"])])
def test_both_update_orders_train_from_the_command_line(data_root, tmp_path, order, mode):
    """``--update-order sequential`` (its default mode, auto, runs it eagerly) and the joint order
    train through the same command and the agent's own ``run_updates``."""
    out = tmp_path / order
    args = ["--dataset", DATA_ID, "--steps", "20", "--update-order", order, "--out", str(out), "--device", "cpu",
            "--hidden-dims", "8", "8", "--batch-size", "8", "--eval-episodes", "0", "--log-every", "10",
            "--checkpoint-every", "10", *mode]  # fmt: skip
    assert main(args) == 0
    logs = pd.read_csv(out / "train_log.csv")
    assert list(logs["step"]) == [10, 20] and logs[["value_loss", "critic_loss", "actor_loss"]].notna().all().all()
    assert json.loads((out / "run.json").read_text())["iql"]["update_order"] == order
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["agent"]["num_updates"] == 20


def test_default_run_folder_names_the_policy_and_an_older_folder_still_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TrainConfig(dataset="a/b-v0", steps=10).out == "runs/a_b-v0-awr-seed0"
    assert TrainConfig(dataset="a/b-v0", steps=10, iql=IQLConfig(policy="bc")).out == "runs/a_b-v0-bc-seed0"
    (tmp_path / "runs" / "a_b-v0-iql-seed0").mkdir(parents=True)  # the name awr's folders had before
    assert TrainConfig(dataset="a/b-v0", steps=10).out == "runs/a_b-v0-iql-seed0"
