"""The sweep on Ray: the same files as the in-process loop, a killed task resumed by a rerun,
and no Ray import at all without --ray."""

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from iql_tutorial.runs.sweep import SweepConfig, main, run_sweep, run_tag
from iql_tutorial.utils import load_checkpoint

torch.set_num_threads(1)

DATASET = "tests/pendulum/short-v0"


def tiny(tmp, **kw):
    return SweepConfig(
        datasets=[DATASET], seeds=[0, 1], policies=["awr"], steps=20, runs=str(tmp / "runs"),
        results=str(tmp / "results"), name="t", device="cpu", mode="eager", eval_every=10, eval_episodes=1,
        iql_overrides={"hidden_dims": (8, 8), "batch_size": 8}, **kw,
    )  # fmt: skip


def test_sweep_without_ray_does_not_import_it(tiny_minari, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import torch
        from iql_tutorial.runs.sweep import SweepConfig, run_sweep
        assert "ray" not in sys.modules
        torch.set_num_threads(1)
        run_sweep(SweepConfig(datasets=[{DATASET!r}], seeds=[0], policies=["bc"], steps=2, runs={str(tmp_path / "r")!r},
                              results={str(tmp_path / "o")!r}, device="cpu", mode="eager", eval_every=2, eval_episodes=1,
                              iql_overrides={{"hidden_dims": (8, 8), "batch_size": 8}}), progress=False)
        assert "ray" not in sys.modules, [m for m in sys.modules if m.startswith("ray")]
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy(), timeout=120)


def test_ray_flag_alone_means_a_local_instance(monkeypatch):
    seen = []
    monkeypatch.setattr("iql_tutorial.runs.sweep.run_sweep", lambda cfg: seen.append(cfg.ray) or 1 / 0)
    for argv, want in (
        (["--ray"], "local"),
        (["--ray", "auto"], "auto"),
        (["--ray", "--steps", "5"], "local"),
        ([], None),
    ):
        if want is None:
            with pytest.raises(ZeroDivisionError):
                main([*argv, "--device", "cpu"])
        else:
            # with --ray, a run's failure is one line and exit status 2
            assert main([*argv, "--device", "cpu"]) == 2
        assert seen.pop() == want


def _kill_after_first_checkpoint(marker: str, run: str):
    """A Ray worker setup hook: the first checkpoint of ``run`` written after ``marker`` exists
    is followed by an error, as if the task were killed there (the marker is removed)."""

    def hook():
        from pathlib import Path

        import iql_tutorial.runs.folder as folder_module  # every checkpoint of a run is written there

        save = folder_module.save_checkpoint

        def save_then_die(path, state):
            save(path, state)
            if Path(path).parent.name == run and Path(marker).exists():
                Path(marker).unlink()
                raise RuntimeError(f"test: killed after the checkpoint of step {state['step']}")

        folder_module.save_checkpoint = save_then_die

    return hook


def test_ray_sweep_resumes_a_killed_task_and_matches_the_loop(tiny_minari, tmp_path):
    import ray  # in requirements.txt: a missing Ray fails here, it is not skipped

    killed = run_tag(DATASET, "awr", 0)
    marker = tmp_path / "kill"
    marker.touch()
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=10**8,
             runtime_env={"worker_process_setup_hook": _kill_after_first_checkpoint(str(marker), killed)})  # fmt: skip
    try:
        cfg = tiny(tmp_path / "ray", ray="local")
        with pytest.raises(RuntimeError, match="killed after the checkpoint of step 10"):
            run_sweep(cfg, progress=False)
        assert not marker.exists()
        assert int(load_checkpoint(tmp_path / "ray" / "runs" / killed / "checkpoint.pt")["step"]) == 10
        partial = pd.read_csv(tmp_path / "ray" / "results" / "t.csv")
        assert set(partial["seed"]) == {1}  # the other run finished and was gathered
        frame = run_sweep(cfg, progress=False)  # resumes the killed run, skips the finished one
    finally:
        ray.shutdown()
    local = run_sweep(tiny(tmp_path / "local"), progress=False)
    assert list(frame["seed"]) == [0, 0, 1, 1]  # seed-major, as in the loop
    on_disk = {w: pd.read_csv(tmp_path / w / "results" / "t.csv").drop(columns="wall_s") for w in ("ray", "local")}
    pd.testing.assert_frame_equal(on_disk["ray"], on_disk["local"])
    pd.testing.assert_frame_equal(frame.drop(columns="wall_s"), local.drop(columns="wall_s"))
    for seed in (0, 1):
        tag = run_tag(DATASET, "awr", seed)
        a, b = (
            load_checkpoint(tmp_path / w / "runs" / tag / "checkpoint.pt")["agent"]["networks"]
            for w in ("ray", "local")
        )
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), tag
    runs = {w: json.loads((tmp_path / w / "results" / "t.json").read_text())["runs"] for w in ("ray", "local")}
    assert list(runs["ray"]) == list(runs["local"]) == [run_tag(DATASET, "awr", s) for s in (0, 1)]
    assert all(r["hardware"] and r["commit"] and r["command"].startswith("python -m iql_tutorial train")
               for r in runs["ray"].values())  # fmt: skip
