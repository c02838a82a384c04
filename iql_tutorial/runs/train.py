"""Offline training of IQL (or the behaviour-cloning baseline) on a Minari dataset.

Command line::

    python -m iql_tutorial.train --dataset iqlbook/pendulum/medium-replay-v0 --steps 20000

Python::

    from iql_tutorial.train import TrainConfig, train
    result = train(TrainConfig(dataset="iqlbook/pendulum/medium-replay-v0", steps=20_000))

A run folder holds ``run.json`` (the configuration), ``checkpoint.pt`` (written atomically),
``train_log.csv`` (losses every ``log_every`` steps) and ``eval_log.csv`` (returns and
normalized scores every ``eval_every`` steps). ``resume=True`` continues a killed run; on the
CPU the result is bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_tutorial.agent import IQLAgent
from iql_tutorial.checkpoint import CsvLog, load_checkpoint, save_checkpoint
from iql_tutorial.config import IQLConfig
from iql_tutorial.data import OfflineDataset, load_dataset
from iql_tutorial.evaluation import evaluate
from iql_tutorial.fast import StepRunner
from iql_tutorial.utils import (
    atomic_write_text,
    progress_bar,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)

TRAIN_COLUMNS = [
    "step",
    "value_loss",
    "critic_loss",
    "actor_loss",
    "v_mean",
    "q_mean",
    "weight_mean",
    "actor_lr",
    "wall_s",
]
EVAL_COLUMNS = ["step", "return_mean", "return_std", "score_mean", "score_std", "wall_s"]


def preset_for(dataset_id: str) -> dict[str, Any]:
    """The paper's per-domain settings (Appendix B): sparse navigation (mazes) uses
    expectile 0.9, beta 10 and rewards shifted by -1; everything else the locomotion ones."""
    if "maze" in dataset_id.lower():
        return {"expectile": 0.9, "beta": 10.0, "reward_norm": "shift"}
    return {"expectile": 0.7, "beta": 3.0, "reward_norm": "locomotion"}


@dataclass
class TrainConfig:
    """One training run. ``iql`` fields left as ``None`` in ``overrides`` come from the preset."""

    dataset: str
    steps: int = 1_000_000
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    resume: bool = False
    reward_norm: str | None = None
    eval_every: int = 5_000
    eval_episodes: int = 10
    log_every: int = 1_000
    checkpoint_every: int = 10_000
    iql: dict[str, Any] = field(default_factory=dict)
    compile: bool = False
    cuda_graph: bool = False
    bf16: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be a positive integer.")
        if self.eval_episodes < 0:
            raise ValueError(f"TrainConfig.eval_episodes={self.eval_episodes} must be >= 0 (0 disables evaluation).")
        if self.out is None:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.dataset)
            policy = self.iql.get("policy", "awr")
            self.out = str(Path("runs") / f"{name}-{'iql' if policy == 'awr' else policy}-seed{self.seed}")

    def iql_config(self) -> IQLConfig:
        preset = preset_for(self.dataset)
        kwargs = {"expectile": preset["expectile"], "beta": preset["beta"], **self.iql, "total_steps": self.steps}
        return IQLConfig(**kwargs)

    def resolved_reward_norm(self) -> str:
        return self.reward_norm or preset_for(self.dataset)["reward_norm"]

    def identity(self) -> dict[str, Any]:
        """What must match for a resume to continue the same run."""
        return {
            "dataset": self.dataset,
            "steps": self.steps,
            "seed": self.seed,
            "reward_norm": self.resolved_reward_norm(),
            "iql": self.iql_config().to_dict(),
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
        }


@dataclass
class TrainResult:
    out: Path
    agent: IQLAgent
    dataset: OfflineDataset
    train_log: pd.DataFrame
    eval_log: pd.DataFrame
    wall_s: float


def _check_out_dir(out: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    """Refuse to write into a folder that holds another run; return the checkpoint to resume."""
    ckpt_path, run_path = out / "checkpoint.pt", out / "run.json"
    if out.exists() and any(out.iterdir()) and not run_path.exists():
        raise FileExistsError(
            f"Output folder {out} is not empty and holds no run of this package; refusing to write into it. "
            "Choose another --out."
        )
    if not run_path.exists():
        return None
    previous = json.loads(run_path.read_text())
    if not cfg.resume:
        raise FileExistsError(
            f"Output folder {out} already holds a run (dataset {previous.get('dataset')}, seed {previous.get('seed')}). "
            "Pass --resume to continue it, or choose another --out to start a new one; nothing was overwritten."
        )
    if previous != cfg.identity():
        diff = sorted(k for k in set(previous) | set(cfg.identity()) if previous.get(k) != cfg.identity().get(k))
        raise ValueError(
            f"Cannot resume {out}: its run.json differs from this configuration in {diff}. "
            "Resume with the same settings, or choose another --out."
        )
    return load_checkpoint(ckpt_path) if ckpt_path.exists() else None


def train(cfg: TrainConfig, dataset: OfflineDataset | None = None, progress: bool = True) -> TrainResult:
    """Train per ``cfg`` and return the agent with its logs. See the module docstring."""
    out = Path(cfg.out)
    iql = cfg.iql_config()
    ckpt = _check_out_dir(out, cfg)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    if dataset is None:
        dataset = load_dataset(cfg.dataset, device=device, reward_norm=cfg.resolved_reward_norm())
    elif dataset.transitions.device != device:
        dataset = dataclasses.replace(dataset, transitions=dataset.transitions.to(device))
    if dataset.transitions.reward_dim != iql.reward_dim:
        raise ValueError(
            f"Dataset {cfg.dataset} has {dataset.transitions.reward_dim}-dimensional rewards but the config expects "
            f"{iql.reward_dim} (reward_weights={iql.reward_weights}). Give one reward weight per dimension."
        )
    dataset.transitions.check_finite(f"Dataset {cfg.dataset}")
    # --compile: the whole update as one compiled function (joint order); the sequential order
    # has three backward passes by design and runs eagerly; with --cuda-graph the captured losses are compiled
    whole = cfg.compile and not cfg.cuda_graph and iql.update_order == "joint"
    agent = IQLAgent(dataset.obs_dim, dataset.act_dim, iql, device, compile=cfg.compile and not whole)
    sampler = torch.Generator(device=device)
    sampler.manual_seed(cfg.seed)
    train_log, eval_log = CsvLog(out / "train_log.csv", TRAIN_COLUMNS), CsvLog(out / "eval_log.csv", EVAL_COLUMNS)
    start, wall_offset = 0, 0.0
    if ckpt is not None:
        agent.load_full_state(ckpt["agent"])
        sampler.set_state(ckpt["sampler"])
        set_rng_state(ckpt["rng"])
        start, wall_offset = int(ckpt["step"]), float(ckpt.get("wall_s", 0.0))
        train_log.truncate_after(start)
        eval_log.truncate_after(start)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for log in (train_log, eval_log):
            log.path.unlink(missing_ok=True)
        atomic_write_text(out / "run.json", json.dumps(cfg.identity(), indent=2))

    t0 = time.perf_counter() - wall_offset
    runner = StepRunner(agent, dataset.transitions, sampler, cuda_graph=cfg.cuda_graph, bf16=cfg.bf16, whole_step=whole)
    bar = progress_bar(cfg.steps, start, f"{iql.policy} {cfg.dataset}", "step", progress)
    s = start
    while s < cfg.steps:
        # run up to the next log / evaluation / checkpoint in one call: no Python work per step
        s_next = min(
            cfg.steps, *((s // every + 1) * every for every in (cfg.log_every, cfg.eval_every, cfg.checkpoint_every))
        )
        metrics = runner.run(s_next - s)
        bar.update(s_next - s)
        s = s_next
        if s % cfg.log_every == 0 or s == cfg.steps:  # the only host syncs: once per log interval
            row = {k: float(v) for k, v in metrics.items() if v.dim() == 0}
            row.update(step=s, actor_lr=float(agent.actor_opt.param_groups[0]["lr"]), wall_s=time.perf_counter() - t0)
            train_log.append(row)
            bar.set_postfix(
                v=f"{row['value_loss']:.3g}",
                q=f"{row['critic_loss']:.3g}",
                pi=f"{row['actor_loss']:.3g}",
                refresh=False,
            )
        if cfg.eval_episodes > 0 and (s % cfg.eval_every == 0 or s == cfg.steps):
            last_eval = evaluate(agent, dataset, cfg.eval_episodes, seed=cfg.seed * 100_003 + s)
            eval_log.append({**last_eval, "step": s, "wall_s": time.perf_counter() - t0})
            bar.set_postfix(score=f"{last_eval.get('score_mean', last_eval['return_mean']):.1f}", refresh=False)
        if s % cfg.checkpoint_every == 0 or s == cfg.steps:
            state = {
                "agent": agent.full_state(),
                "sampler": sampler.get_state(),
                "rng": rng_state(),
                "step": s,
                "wall_s": time.perf_counter() - t0,
                "run": cfg.identity(),
            }
            save_checkpoint(out / "checkpoint.pt", state)
    bar.close()

    return TrainResult(out, agent, dataset, train_log.frame(), eval_log.frame(), time.perf_counter() - t0)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="Minari dataset id (python -m iql_tutorial.data list)")
    p.add_argument("--steps", type=int, default=1_000_000, help="gradient steps (paper: 1,000,000)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default runs/<dataset>-<policy>-seed<S>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--reward-norm", choices=["none", "locomotion", "shift"], default=None)
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--log-every", type=int, default=1_000)
    p.add_argument("--checkpoint-every", type=int, default=10_000)
    p.add_argument("--expectile", type=float, default=None, help="expectile tau (preset: 0.7, mazes 0.9)")
    p.add_argument("--beta", type=float, default=None, help="AWR inverse temperature (preset: 3, mazes 10)")
    p.add_argument("--policy", choices=["awr", "bc"], default="awr", help="bc: the behaviour-cloning baseline")
    p.add_argument("--update-order", choices=["joint", "sequential"], default="joint")
    p.add_argument("--num-critics", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--actor-dropout", type=float, default=0.0)
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the whole update as one function (same numbers up to float rounding, faster)",
    )
    p.add_argument("--cuda-graph", action="store_true", help="capture the whole update as a CUDA graph (GPU)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast inside the CUDA graph")
    a = p.parse_args(argv)
    iql = {
        "policy": a.policy,
        "update_order": a.update_order,
        "num_critics": a.num_critics,
        "batch_size": a.batch_size,
        "actor_dropout": a.actor_dropout,
    }
    if a.expectile is not None:
        iql["expectile"] = a.expectile
    if a.beta is not None:
        iql["beta"] = a.beta
    return TrainConfig(
        dataset=a.dataset,
        steps=a.steps,
        device=a.device,
        seed=a.seed,
        out=a.out,
        resume=a.resume,
        reward_norm=a.reward_norm,
        eval_every=a.eval_every,
        eval_episodes=a.eval_episodes,
        log_every=a.log_every,
        checkpoint_every=a.checkpoint_every,
        iql=iql,
        compile=a.compile,
        cuda_graph=a.cuda_graph,
        bf16=a.bf16,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        cfg.iql_config()  # range checks before any work
        result = train(cfg)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last = result.eval_log.iloc[-1].to_dict() if len(result.eval_log) else {}
    print(f"done: {result.out} ({result.wall_s:.0f} s); last evaluation: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
