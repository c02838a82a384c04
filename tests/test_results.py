"""The results sweep trains every run once, gathers the curves and records how they were made."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from iql_tutorial.runs.sweep import SweepConfig, run_sweep, summary

torch.set_num_threads(1)
# the compiled test uses test_train.py's configuration, so Dynamo compiles the graph once per process
COMPILED = {"hidden_dims": (32, 32), "batch_size": 32, "actor_dropout": 0.1}
REPO = Path(__file__).resolve().parents[1]


def test_sweep_gathers_curves_and_skips_finished_runs(tiny_minari, tmp_path):
    cfg = SweepConfig(
        datasets=["tests/pendulum/short-v0"], seeds=[0, 1], steps=20, runs=str(tmp_path / "runs"),
        results=str(tmp_path / "results"), name="t", device="cpu", mode="eager", eval_every=10, eval_episodes=1,
        iql_overrides={"hidden_dims": (8, 8), "batch_size": 8},
    )  # fmt: skip
    frame = run_sweep(cfg, progress=False)
    assert set(frame["policy"]) == {"awr", "bc"} and set(frame["seed"]) == {0, 1}  # identifiers, not labels
    assert len(frame) == 2 * 2 * 2  # two evaluations per run
    meta = json.loads((tmp_path / "results" / "t.json").read_text())
    assert len(meta["runs"]) == 4
    run = next(iter(meta["runs"].values()))
    assert run["command"].startswith("python -m iql_tutorial train")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "iql_tutorial"],
                           capture_output=True, text=True, cwd=REPO)  # fmt: skip
    want = head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    assert head.returncode == 0 and run["commit"] == want  # this checkout's commit, not "unknown"
    assert run["hardware"].startswith("CPU ") and f"torch {torch.__version__}" in run["hardware"]  # device, torch
    assert f"{torch.get_num_threads()} torch threads" in run["hardware"]
    stamp = (tmp_path / "runs" / "tests_pendulum_short-v0-awr-seed0" / "checkpoint.pt").stat().st_mtime_ns
    again = run_sweep(cfg, progress=False)  # finished runs are not trained again
    assert (tmp_path / "runs" / "tests_pendulum_short-v0-awr-seed0" / "checkpoint.pt").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(frame, again)
    table = summary(frame)
    assert list(table["count"]) == [2, 2]


def test_compiled_sweep_records_its_command(tiny_minari, tmp_path):
    cfg = SweepConfig(
        datasets=["tests/pendulum/short-v0"], seeds=[0], steps=20, policies=["awr"], runs=str(tmp_path / "runs"),
        results=str(tmp_path / "results"), name="c", device="cpu", mode="compile", eval_every=10, eval_episodes=1,
        iql_overrides=dict(COMPILED),
    )  # fmt: skip
    frame = run_sweep(cfg, progress=False)
    assert list(frame["step"]) == [10, 20]
    run = next(iter(json.loads((tmp_path / "results" / "c.json").read_text())["runs"].values()))
    assert " --mode compile " in run["command"]
    assert run["command"].endswith("--hidden-dims 32 32 --batch-size 32 --actor-dropout 0.1")


def test_finetune_sweep_continues_the_offline_runs(tiny_minari, tmp_path):
    from iql_tutorial.runs.sweep import run_finetune_sweep

    kw = {
        "datasets": ["tests/pendulum/short-v0"],
        "seeds": [0],
        "runs_dir": tmp_path / "runs",
        "results_dir": tmp_path / "results",
        "name": "f",
        "eval_episodes": 1,
        "progress": False,
    }
    run_sweep(
        SweepConfig(datasets=kw["datasets"], seeds=kw["seeds"], steps=20, policies=["awr"], runs=str(kw["runs_dir"]),
                    results=str(kw["results_dir"]), name="f", device="cpu", mode="eager", eval_every=10,
                    eval_episodes=1, iql_overrides={"hidden_dims": (8, 8)}),
        progress=False,
    )  # fmt: skip
    frame = run_finetune_sweep(offline_steps=20, online_steps=30, eval_every=15, **kw)
    assert list(frame["step"]) == [0, 15, 30]
    assert (tmp_path / "results" / "f-finetune.json").exists()


def test_the_commit_is_read_when_a_run_starts_not_at_import():
    code = """
import subprocess, sys
calls = []
real = subprocess.run
subprocess.run = lambda args, *a, **kw: calls.append(args[0]) or real(args, *a, **kw)
import iql_tutorial.runs.sweep as sweep
assert calls == [], calls
first = sweep.code_commit()
assert calls == ["git", "git"] and first and sweep.code_commit() == first == sweep.CODE_COMMIT, calls
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_one_mapping_of_methods_reads_old_and_new_results():
    """Identifiers (awr, bc) in new results, labels (IQL, BC) in the committed ones: both read, and
    figures get the labels of ``core.methods.LABELS``."""
    from iql_tutorial.core.methods import LABELS, identifier, label, with_identifiers, with_labels

    sweeps = [p for p in sorted((REPO / "data" / "results").glob("*.csv")) if not p.name.startswith("naive")]
    committed = pd.concat([pd.read_csv(p) for p in sweeps if "policy" in pd.read_csv(p, nrows=0).columns])
    # the older sweeps wrote the labels, the newer ones (pendulum-me-10k) the identifiers: both are there
    assert {"IQL", "BC", "awr", "bc"} == set(committed["policy"])
    assert set(with_identifiers(committed)["policy"]) == {"awr", "bc"}
    assert set(with_labels(committed)["policy"]) == {"IQL", "BC"}
    # every row keeps its method through both spellings
    assert list(with_labels(with_identifiers(committed))["policy"]) == list(with_labels(committed)["policy"])
    old = committed[committed["policy"].isin(["IQL", "BC"])]
    assert list(with_labels(old)["policy"]) == list(old["policy"])
    new = pd.DataFrame({"policy": ["awr", "bc"], "score": [1.0, 2.0]})
    assert list(with_labels(new)["policy"]) == ["IQL", "BC"] and list(new["policy"]) == ["awr", "bc"]
    assert identifier("iql") == "awr" and label("bc") == "BC" and set(LABELS) == {"awr", "bc", "naive"}
