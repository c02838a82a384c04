"""The results sweep trains every run once, gathers the curves and records how they were made."""

import json

import pandas as pd
import torch

from iql_tutorial.results import run_sweep, summary

torch.set_num_threads(1)


def test_sweep_gathers_curves_and_skips_finished_runs(tiny_minari, tmp_path):
    kw = {
        "datasets": ["tests/pendulum/short-v0"],
        "seeds": [0, 1],
        "steps": 20,
        "runs_dir": tmp_path / "runs",
        "results_dir": tmp_path / "results",
        "name": "t",
        "device": "cpu",
        "eval_every": 10,
        "eval_episodes": 1,
        "extra_iql": {"hidden_dims": (8, 8), "batch_size": 8},
        "progress": False,
    }
    frame = run_sweep(**kw)
    assert set(frame["policy"]) == {"IQL", "BC"} and set(frame["seed"]) == {0, 1}
    assert len(frame) == 2 * 2 * 2  # two evaluations per run
    meta = json.loads((tmp_path / "results" / "t.json").read_text())
    assert len(meta["runs"]) == 4
    run = next(iter(meta["runs"].values()))
    assert run["command"].startswith("python -m iql_tutorial.train") and run["hardware"] and run["commit"]
    stamp = (tmp_path / "runs" / "tests_pendulum_short-v0-awr-seed0" / "checkpoint.pt").stat().st_mtime_ns
    again = run_sweep(**kw)  # finished runs are not trained again
    assert (tmp_path / "runs" / "tests_pendulum_short-v0-awr-seed0" / "checkpoint.pt").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(frame, again)
    table = summary(frame)
    assert list(table["count"]) == [2, 2]


def test_compiled_sweep_records_its_command(tiny_minari, tmp_path):
    frame = run_sweep(
        ["tests/pendulum/short-v0"], [0], 20, ("awr",), tmp_path / "runs", tmp_path / "results", "c", "cpu",
        eval_every=10, eval_episodes=1, extra_iql={"hidden_dims": (8, 8), "batch_size": 8}, progress=False,
        compile=True,
    )  # fmt: skip
    assert list(frame["step"]) == [10, 20]
    run = next(iter(json.loads((tmp_path / "results" / "c.json").read_text())["runs"].values()))
    assert run["command"].endswith(" --compile")


def test_finetune_sweep_continues_the_offline_runs(tiny_minari, tmp_path):
    from iql_tutorial.results import run_finetune_sweep

    kw = {
        "datasets": ["tests/pendulum/short-v0"],
        "seeds": [0],
        "runs_dir": tmp_path / "runs",
        "results_dir": tmp_path / "results",
        "name": "f",
        "eval_episodes": 1,
        "progress": False,
    }
    run_sweep(steps=20, policies=("awr",), device="cpu", eval_every=10, extra_iql={"hidden_dims": (8, 8)}, **kw)
    frame = run_finetune_sweep(offline_steps=20, online_steps=30, eval_every=15, **kw)
    assert list(frame["step"]) == [0, 15, 30]
    assert (tmp_path / "results" / "f-finetune.json").exists()
