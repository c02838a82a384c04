"""The results sweep: IQL and behaviour cloning, several datasets and seeds, resumable.

    python -m iql_tutorial.results                       # the default sweep (see DEFAULT_DATASETS)
    python -m iql_tutorial.results --datasets iqlbook/pendulum/medium-replay-v0 --seeds 0 1 2 --steps 20000

Every run has its own folder under ``--runs`` and is resumed if it was interrupted, and skipped
if it finished, so a long sweep survives interruptions without losing finished work. After each
run, the evaluation curves of every finished run are gathered into ``<results>/<name>.csv``
(one row per evaluation) and ``<results>/<name>.json`` records, per run, the exact command, the
commit, the hardware and the wall time. The final chapter reads those two files.

Budget: the paper trains 1,000,000 gradient steps, which is the default on a GPU. On a CPU the
default is ``CPU_STEPS`` = 10,000 (1% of the paper's budget, 3 to 6 minutes per run on 2 cores,
about 2 hours for the default sweep); pass ``--steps`` to choose. Evaluation follows the paper:
10 episodes of the deterministic policy.

The committed results under ``data/results`` were made with (1 torch thread per process)::

    python -m iql_tutorial.results --name small-cpu --steps 10000 --eval-every 1000 \
        --datasets iqlbook/pendulum/medium-replay-v0 iqlbook/pointmaze/umaze-v0 iqlbook/pendulum/medium-v0
    python -m iql_tutorial.results --name mujoco-cpu --steps 10000 --eval-every 2000 \
        --datasets iqlbook/halfcheetah/medium-replay-v0 iqlbook/halfcheetah/medium-v0
    python -m iql_tutorial.results --name mujoco-hopper-cpu --steps 10000 --eval-every 2000 \
        --datasets iqlbook/hopper/medium-replay-v0 iqlbook/hopper/medium-v0

and the fine-tuning curves with ``run_finetune_sweep(DATASETS, [0, 1, 2], 10000, 3000, name=NAME,
eval_every=1000)`` for Pendulum medium-replay and the U-maze (``small-cpu``) and for HalfCheetah
medium-replay (``mujoco-cpu``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_tutorial.checkpoint import load_checkpoint
from iql_tutorial.train import TrainConfig, train
from iql_tutorial.utils import resolve_device

DEFAULT_DATASETS = [
    "iqlbook/hopper/medium-v0",
    "iqlbook/hopper/medium-replay-v0",
    "iqlbook/halfcheetah/medium-v0",
    "iqlbook/halfcheetah/medium-replay-v0",
]
GPU_STEPS = 1_000_000
CPU_STEPS = 10_000
RESULTS_DIR = Path(__file__).resolve().parents[1] / "data" / "results"


def commit_id() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _finished(out: Path, steps: int) -> bool:
    ckpt = out / "checkpoint.pt"
    return ckpt.exists() and int(load_checkpoint(ckpt).get("step", 0)) >= steps


def run_sweep(
    datasets: list[str],
    seeds: list[int],
    steps: int,
    policies: tuple[str, ...] = ("awr", "bc"),
    runs_dir: str | Path = "runs/results",
    results_dir: str | Path = RESULTS_DIR,
    name: str = "sweep",
    device: str = "auto",
    eval_every: int | None = None,
    eval_episodes: int = 10,
    extra_iql: dict[str, Any] | None = None,
    progress: bool = True,
    compile: bool = False,
) -> pd.DataFrame:
    """Train every (dataset, policy, seed) and gather the evaluation curves; see module docstring."""
    dev = resolve_device(device)
    results_dir, runs_dir = Path(results_dir), Path(runs_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    meta_path = results_dir / f"{name}.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"runs": {}}
    eval_every = eval_every or max(steps // 10, 1)
    frames = []
    # seed-major: every (dataset, policy) gets its first seed before any gets its second, so a
    # sweep stopped early still covers every cell of the table
    for seed in seeds:
        for ds in datasets:
            for policy in policies:
                tag = f"{ds.replace('/', '_')}-{policy}-seed{seed}"
                out = runs_dir / tag
                cfg = TrainConfig(
                    dataset=ds,
                    steps=steps,
                    device=str(dev),
                    seed=seed,
                    out=str(out),
                    resume=out.exists(),
                    eval_every=eval_every,
                    eval_episodes=eval_episodes,
                    log_every=max(eval_every // 5, 1),
                    checkpoint_every=eval_every,
                    iql={"policy": policy, **(extra_iql or {})},
                    compile=compile,
                )
                if not _finished(out, steps):
                    t0 = time.perf_counter()
                    result = train(cfg, progress=progress)
                    cmd = (
                        f"python -m iql_tutorial.train --dataset {ds} --steps {steps} --seed {seed} --policy {policy} "
                        f"--eval-every {eval_every} --eval-episodes {eval_episodes} --out {shlex.quote(str(out))}"
                        + (" --compile" if compile else "")
                    )
                    meta["runs"][tag] = {
                        "command": cmd,
                        "commit": commit_id(),
                        "hardware": hardware(dev),
                        "wall_s_this_session": round(time.perf_counter() - t0, 1),
                        "wall_s_total": round(result.wall_s, 1),
                        "steps": steps,
                    }
                    meta_path.write_text(json.dumps(meta, indent=2))
                log = pd.read_csv(out / "eval_log.csv")
                log.insert(0, "seed", seed)
                log.insert(0, "policy", "IQL" if policy == "awr" else "BC")
                log.insert(0, "dataset", ds)
                frames.append(log)
                pd.concat(frames).to_csv(results_dir / f"{name}.csv", index=False)
    return pd.concat(frames, ignore_index=True)


def run_finetune_sweep(
    datasets: list[str],
    seeds: list[int],
    offline_steps: int,
    online_steps: int,
    runs_dir: str | Path = "runs/results",
    results_dir: str | Path = RESULTS_DIR,
    name: str = "sweep",
    eval_every: int | None = None,
    eval_episodes: int = 10,
    progress: bool = True,
) -> pd.DataFrame:
    """Fine-tune online each finished offline IQL run of ``run_sweep`` (same folders), then
    gather the curves into ``<results>/<name>-finetune.csv``: step 0 is the offline policy."""
    from iql_tutorial.finetune import FinetuneConfig, finetune

    results_dir, runs_dir = Path(results_dir), Path(runs_dir)
    meta_path = results_dir / f"{name}-finetune.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"runs": {}}
    eval_every = eval_every or max(online_steps // 5, 1)
    frames = []
    for ds in datasets:
        for seed in seeds:
            offline = runs_dir / f"{ds.replace('/', '_')}-awr-seed{seed}"
            if not _finished(offline, offline_steps):
                raise FileNotFoundError(
                    f"{offline} is not a finished {offline_steps}-step IQL run: run the offline sweep first."
                )
            out = offline.with_name(offline.name + "-online")
            done = (out / "eval_log.csv").exists() and int(
                pd.read_csv(out / "eval_log.csv")["step"].max()
            ) >= online_steps
            if not done:
                t0 = time.perf_counter()
                finetune(
                    FinetuneConfig(
                        offline_run=str(offline),
                        online_steps=online_steps,
                        out=str(out),
                        seed=seed,
                        resume=out.exists(),
                        eval_every=eval_every,
                        eval_episodes=eval_episodes,
                        checkpoint_every=eval_every,
                    ),
                    progress=progress,
                )
                meta["runs"][out.name] = {
                    "command": f"python -m iql_tutorial.finetune --offline-run {offline} --online-steps {online_steps} "
                    f"--seed {seed} --eval-every {eval_every} --eval-episodes {eval_episodes} --out {out}",
                    "commit": commit_id(),
                    "hardware": hardware(torch.device("cpu")),
                    "wall_s_this_session": round(time.perf_counter() - t0, 1),
                }
                meta_path.write_text(json.dumps(meta, indent=2))
            log = pd.read_csv(out / "eval_log.csv")
            log.insert(0, "seed", seed)
            log.insert(0, "dataset", ds)
            frames.append(log)
            pd.concat(frames).to_csv(results_dir / f"{name}-finetune.csv", index=False)
    return pd.concat(frames, ignore_index=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation across seeds of the final normalized score."""
    last = frame.sort_values("step").groupby(["dataset", "policy", "seed"]).tail(1)
    col = "score_mean" if "score_mean" in last and last["score_mean"].notna().all() else "return_mean"
    return last.groupby(["dataset", "policy"])[col].agg(["mean", "std", "count"]).round(1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial.results", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help=f"default {GPU_STEPS} on a GPU, {CPU_STEPS} on a CPU")
    p.add_argument("--policies", nargs="+", default=["awr", "bc"], choices=["awr", "bc"])
    p.add_argument("--runs", default="runs/results")
    p.add_argument("--results", default=str(RESULTS_DIR))
    p.add_argument("--name", default="sweep")
    p.add_argument("--device", default="auto")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument(
        "--compile", action="store_true", help="the whole update compiled (train --compile): faster on a CPU"
    )
    p.add_argument(
        "--finetune-steps", type=int, default=0, help="then fine-tune each IQL run online for this many env steps"
    )
    a = p.parse_args(argv)
    steps = a.steps or (GPU_STEPS if resolve_device(a.device).type == "cuda" else CPU_STEPS)
    try:
        frame = run_sweep(
            a.datasets,
            a.seeds,
            steps,
            tuple(a.policies),
            a.runs,
            a.results,
            a.name,
            a.device,
            a.eval_every,
            a.eval_episodes,
            compile=a.compile,
        )
        if a.finetune_steps > 0:
            online = run_finetune_sweep(
                a.datasets, a.seeds, steps, a.finetune_steps, a.runs, a.results, a.name, eval_episodes=a.eval_episodes
            )
            print(online.groupby(["dataset", "step"])["score_mean" if "score_mean" in online else "return_mean"].mean())
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(frame).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
