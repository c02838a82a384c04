"""Killed runs resume exactly: offline training and fine-tuning are killed between checkpoints,
after log rows were written past the last checkpoint and with a half-written last line in both
logs; the resumed run's logs (every column but wall_s) and parameters equal an uninterrupted run's."""

import csv
import importlib
import io
from functools import partial
from pathlib import Path

import helpers
import pandas as pd
import pytest
import torch
from helpers import Killed, assert_same_state, minari_path, small_iql

from iql_tutorial.runs.csvlog import CsvLog
from iql_tutorial.runs.finetune import finetune
from iql_tutorial.runs.train import train

torch.set_num_threads(1)
TRAIN_DATA = "tests/pendulum/tiny-v0"  # 3 episodes of 50 steps
FT_DATA = "tests/pendulum/short-v0"  # 2 episodes of 30 steps: fine-tuning episodes are 30 steps


# the schedules are given with the fixtures below
train_config = partial(helpers.train_config, dataset=TRAIN_DATA, steps=60, log_every=10, eval_every=20,
                       eval_episodes=1, checkpoint_every=30,
                       iql=small_iql(actor_dropout=0.1))  # dropout: the global torch generator matters too  # fmt: skip
ft_config = partial(helpers.ft_config, online_steps=90, log_every=10, eval_every=35, eval_episodes=1,
                    checkpoint_every=20)  # fmt: skip


def tear_last_line(path: Path) -> None:
    """The kill hit while the last row was being written: keep only the first half of it."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    body = data.rstrip(b"\r\n")
    last = body.rsplit(b"\n", 1)[1]
    path.write_bytes(body[: len(body) - len(last) + len(last) // 2])


def whole_rows(path: Path) -> list[int]:
    """Steps of the complete rows (the torn last line left out)."""
    lines = path.read_text().splitlines()[1:-1]
    return [int(line.split(",")[0]) for line in lines]


def assert_same_logs(full: Path, resumed: Path) -> None:
    for name in ("train_log.csv", "eval_log.csv"):
        a, b = pd.read_csv(full / name), pd.read_csv(resumed / name)
        assert list(a.columns) == list(b.columns) and "wall_s" in a.columns
        assert len(a) > 0, name
        pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"), check_exact=True, obj=name)


def kill_mid_row(monkeypatch, log_name: str, step: int) -> None:
    """The run dies while writing the ``step`` row of ``log_name``: half the line is on disk."""
    original = CsvLog.append

    def dying_append(self, row):
        if self.path.name == log_name and int(row["step"]) == step:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
            if not self.path.exists():
                w.writeheader()
            header = buf.getvalue()
            w.writerow(row)
            line = buf.getvalue()[len(header) :]
            with open(self.path, "a", newline="") as f:
                f.write(header + line[: len(line) // 2])
            raise Killed()
        return original(self, row)

    monkeypatch.setattr(CsvLog, "append", dying_append)


def kill_while_saving(monkeypatch, fn, key: str, step: int) -> None:
    """The run dies while writing the checkpoint of ``step``: the previous checkpoint stays."""
    del fn  # train and finetune both write checkpoints through the shared run-folder helper
    module = importlib.import_module("iql_tutorial.runs.folder")  # the module whose global it calls
    original = module.save_checkpoint

    def dying_save(path, state):
        if int(state[key]) == step:
            raise Killed()
        return original(path, state)

    monkeypatch.setattr(module, "save_checkpoint", dying_save)


def tear_whole_logs(out: Path) -> None:
    for name in ("train_log.csv", "eval_log.csv"):
        if (out / name).read_text().endswith("\n"):
            tear_last_line(out / name)


# ------------------------------------------------------------------------------ offline training
# steps 60; rows every 10, evaluations every 20, checkpoints at 30 and 60
@pytest.fixture(scope="module")
def full_run(tiny_datasets_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    with minari_path(tiny_datasets_path):
        result = train(train_config(out), progress=False)
    return out, result


@pytest.mark.parametrize(
    "kill, train_rows, eval_rows",
    [
        # dies writing train row 50: checkpoint 30 on disk, train row 40 and eval row 40 after it
        ("row train 50", [10, 20, 30, 40], [20]),
        # dies writing the checkpoint of step 60 (the last one): every row up to 60 is on disk
        ("save train 60", [10, 20, 30, 40, 50], [20, 40]),
        # dies writing eval row 20, before the first checkpoint: run.json but nothing to resume from
        ("row eval 20", [10], []),
    ],
)
def test_killed_training_resumes_to_the_uninterrupted_run(
    full_run, tiny_minari, tmp_path, monkeypatch, kill, train_rows, eval_rows
):
    full_out, full = full_run
    out = tmp_path / "killed"
    what, arg, step = kill.split()
    if what == "row":
        kill_mid_row(monkeypatch, f"{arg}_log.csv", int(step))
    else:
        kill_while_saving(monkeypatch, train, "step", int(step))
    with pytest.raises(Killed):
        train(train_config(out), progress=False)
    monkeypatch.undo()
    tear_whole_logs(out)  # both logs now end in a half-written line (listed: the whole rows before it)
    assert whole_rows(out / "train_log.csv") == train_rows
    assert whole_rows(out / "eval_log.csv") == eval_rows
    resumed = train(train_config(out, resume=True), progress=False)

    assert_same_logs(full_out, out)
    assert_same_state(full.agent.full_state(), resumed.agent.full_state(), "agent")
    assert resumed.agent.num_updates == 60
    assert list(resumed.train_log["step"]) == [10, 20, 30, 40, 50, 60]


# ------------------------------------------------------------------------------ fine-tuning
# 90 online steps (episodes of 30); rows every 10, evaluations at 0, 35, 70, 90; checkpoints
# due at 20, 40, 80, written at the episode ends 30, 60, 90
@pytest.fixture(scope="module")
def offline_run(tiny_datasets_path, tmp_path_factory):
    """Overrides conftest's offline_run: this file's train_config (actor dropout, checkpoints every 30)."""
    out = tmp_path_factory.mktemp("offline") / "run"
    with minari_path(tiny_datasets_path):
        train(train_config(out, dataset=FT_DATA, steps=30, eval_episodes=0), progress=False)
    return out


@pytest.fixture(scope="module")
def full_finetune(offline_run, tiny_datasets_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "full"
    with minari_path(tiny_datasets_path):
        result = finetune(ft_config(offline_run, out), progress=False)
    return out, result


@pytest.mark.parametrize(
    "kill, train_rows, eval_rows",
    [
        # dies writing train row 80: checkpoint 60 on disk, train row 70 and eval row 70 after it
        ("row train 80", [10, 20, 30, 40, 50, 60, 70], [0, 35]),
        # dies writing the checkpoint at env step 60: checkpoint 30 stays; rows 40-60, eval 35 after it
        ("save finetune 60", [10, 20, 30, 40, 50], [0]),
        # dies writing train row 20, before the first checkpoint (step 30): nothing to resume from
        ("row train 20", [10], []),
    ],
)
def test_killed_fine_tuning_resumes_to_the_uninterrupted_run(
    full_finetune, offline_run, tiny_minari, tmp_path, monkeypatch, kill, train_rows, eval_rows
):
    full_out, full = full_finetune
    out = tmp_path / "killed"
    what, arg, step = kill.split()
    if what == "row":
        kill_mid_row(monkeypatch, f"{arg}_log.csv", int(step))
    else:
        kill_while_saving(monkeypatch, finetune, "env_step", int(step))
    with pytest.raises(Killed):
        finetune(ft_config(offline_run, out), progress=False)
    monkeypatch.undo()
    tear_whole_logs(out)
    assert whole_rows(out / "train_log.csv") == train_rows
    assert whole_rows(out / "eval_log.csv") == eval_rows
    resumed = finetune(ft_config(offline_run, out, resume=True), progress=False)

    assert_same_logs(full_out, out)
    assert_same_state(full.agent.full_state(), resumed.agent.full_state(), "agent")
    assert_same_state(full.buffer.online_part(), resumed.buffer.online_part(), "online buffer")
    assert resumed.agent.num_updates == 30 + 90
    assert list(resumed.eval_log["step"]) == [0, 35, 70, 90]
