"""Offline-to-online fine-tuning (the paper's section 5.3).

After offline training, IQL keeps running the *same* update while it collects new data with
its own (stochastic) policy into a buffer that already holds the offline dataset. Because IQL
never queries actions outside the data, the same losses stay stable when the data grows.

Command line (continues the offline run in ``--offline-run``; writes its own folder)::

    python -m iql_tutorial finetune --offline-run runs/RUN --online-steps 50000 --out runs/RUN-online

A fine-tuning folder holds ``run.json``, ``checkpoint.pt`` (agent, optimizers, the online part
of the buffer, every RNG state), ``train_log.csv`` and ``eval_log.csv``, like an offline run.
Checkpoints are written at episode boundaries, and every episode's reset is seeded from the run
seed and the episode index, so ``--resume`` continues a killed run exactly (bit-identical on CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from iql_tutorial.core.agent import IQLAgent
from iql_tutorial.core.config import IQLConfig
from iql_tutorial.data import OfflineDataset, load_dataset
from iql_tutorial.data.buffer import ReplayBuffer
from iql_tutorial.data.loader import flatten_obs
from iql_tutorial.runs.checkpoint import CsvLog, load_checkpoint
from iql_tutorial.runs.cli import add_fields, given
from iql_tutorial.runs.evaluation import evaluate
from iql_tutorial.runs.folder import Interrupted, RunFolder, differences, read_run_json, run_command
from iql_tutorial.runs.train import EVAL_COLUMNS, TRAIN_COLUMNS, check_data, compile_note, normalize_previous
from iql_tutorial.speed.runner import MODES
from iql_tutorial.utils import (
    live_status,
    progress_bar,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from iql_tutorial.utils.threads import decide_threads


@dataclass
class FinetuneConfig:
    """Online fine-tuning of an offline run (its folder holds run.json and checkpoint.pt).

    Attributes:
        offline_run: folder of a finished offline run (python -m iql_tutorial train).
        online_steps: environment steps to collect online.
        out: fine-tuning folder (default: the offline folder's name + "-online").
        seed: seeds the sampler, the policy's actions and every episode's reset.
        device: auto, cpu or cuda[:N].
        mode: how each update runs: auto, eager, compile or cuda-graph (see the trainer).
        resume: continue the run in out (bit-identical on a CPU).
        updates_per_step: IQL updates after every environment step.
        eval_every: evaluate every this many environment steps.
        eval_episodes: deterministic evaluation episodes (0 disables evaluation).
        log_every: write a train_log.csv row every this many environment steps.
        checkpoint_every: checkpoint at the first episode end after this many environment steps.
        allow_unfinished: fine-tune an offline run that stopped before its last step (it is
            refused otherwise, naming the step it stopped at).
    """

    offline_run: str
    online_steps: int = 100_000
    out: str | None = None
    seed: int = 0
    device: str = "auto"
    mode: str = "auto"
    resume: bool = False
    updates_per_step: int = 1
    eval_every: int = 5_000
    eval_episodes: int = 10
    log_every: int = 1_000
    checkpoint_every: int = 5_000
    allow_unfinished: bool = False

    def __post_init__(self) -> None:
        for name in ("online_steps", "updates_per_step", "eval_every", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"FinetuneConfig.{name}={getattr(self, name)} must be a positive integer.")
        if self.eval_episodes < 0:
            raise ValueError(f"FinetuneConfig.eval_episodes={self.eval_episodes} must be >= 0 (0 disables evaluation).")
        if self.out is None:
            self.out = str(Path(self.offline_run).with_name(Path(self.offline_run).name + "-online"))


# settings that do not change what a fine-tuning run computes (left out of its run.json)
NOT_IDENTITY = ("offline_run", "out", "resume", "device", "mode", "allow_unfinished")


@dataclass
class FinetuneResult:
    out: Path
    agent: IQLAgent
    dataset: OfflineDataset
    buffer: ReplayBuffer
    train_log: pd.DataFrame
    eval_log: pd.DataFrame


def _flat(space: gym.Space, obs: Any) -> np.ndarray:
    batched = {k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[None]
    return flatten_obs(space, batched)[0]


def check_offline_run(cfg: FinetuneConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The offline run's ``run.json`` and final checkpoint, or a one-line error: no run there, a
    fine-tuning folder instead of an offline run, or an unfinished run (unless
    ``allow_unfinished``, which says so and goes on)."""
    offline_dir = Path(cfg.offline_run)
    run_path, ckpt_path = offline_dir / "run.json", offline_dir / "checkpoint.pt"
    if not offline_dir.is_dir():
        what = "is a file, not a folder" if offline_dir.exists() else "does not exist"
        raise FileNotFoundError(
            f"--offline-run {offline_dir} {what}: train offline first (python -m iql_tutorial train) and pass "
            "the run's folder."
        )
    if not run_path.exists() or not ckpt_path.exists():
        missing = "run.json" if not run_path.exists() else "checkpoint.pt"
        raise FileNotFoundError(
            f"{offline_dir} holds no {missing}: train offline first (python -m iql_tutorial train), and pass its "
            "folder as --offline-run."
        )
    offline_run = read_run_json(run_path)
    if "offline_run" in offline_run:
        raise ValueError(
            f"{offline_dir} is a fine-tuning folder, not an offline run; pass the offline run it continued: "
            f"--offline-run {offline_run['offline_run']}."
        )
    lacks = [k for k in ("dataset", "steps", "reward_norm") if k not in offline_run]
    if lacks:
        raise ValueError(f"{run_path} lacks {', '.join(lacks)}: it is not the run.json of an offline run.")
    ckpt = load_checkpoint(ckpt_path)
    lacking = [k for k in ("agent", "step") if not isinstance(ckpt, dict) or k not in ckpt]
    if lacking:
        kind = " (a fine-tuning checkpoint)" if isinstance(ckpt, dict) and "env_step" in ckpt else ""
        raise ValueError(
            f"{ckpt_path} has no '{lacking[0]}' entry{kind}, so it is not the checkpoint of the offline run in "
            f"{offline_dir}; restore that run's checkpoint.pt, or train offline again into a new --out."
        )
    saved_run = ckpt.get("run")
    if isinstance(saved_run, dict):
        diff = differences(normalize_previous(dict(offline_run)), normalize_previous(dict(saved_run)))
        if diff:
            raise ValueError(
                f"{ckpt_path} belongs to another run than {run_path} (they differ in {'; '.join(diff[:3])}); "
                "restore the matching checkpoint.pt or run.json, or train offline again into a new --out."
            )
    step, steps = int(ckpt["step"]), int(offline_run["steps"])
    if step < steps:
        what = (
            f"offline run {offline_dir} stopped at step {step:,} of {steps:,}: finish it first "
            f"(python -m iql_tutorial train ... --resume --out {offline_dir}, with its settings)"
        )
        if not cfg.allow_unfinished:
            raise ValueError(f"{what}, or pass --allow-unfinished to fine-tune it as it is.")
        print(f"note: {what}; fine-tuning it as it is (--allow-unfinished).", file=sys.stderr)
    return offline_run, ckpt


def finetune(cfg: FinetuneConfig, dataset: OfflineDataset | None = None, progress: bool = True) -> FinetuneResult:
    """Load the offline run's final checkpoint, then alternate one environment step with the
    policy's sampled action and ``updates_per_step`` IQL updates on the mixed buffer.

    The fine-tuning folder is locked while this writes into it (``folder.RunFolder``); Ctrl-C
    raises ``folder.Interrupted``; a failure before the run started leaves no folder behind."""
    offline_run, offline_ckpt = check_offline_run(cfg)
    folder = RunFolder.open(str(cfg.out), what="fine-tuning run", step_key="env_step")
    ok = False
    try:
        result = _finetune(cfg, folder, offline_run, offline_ckpt, dataset, progress)
        ok = True
        return result
    except KeyboardInterrupt:  # before the loop (loading, the step-0 evaluation): the loop raises its own
        raise Interrupted(folder.path, folder.progress_step, folder.saved_step) from None
    finally:
        folder.close(ok)


def _finetune(
    cfg: FinetuneConfig,
    folder: RunFolder,
    offline_run: dict[str, Any],
    offline_ckpt: dict[str, Any],
    dataset: OfflineDataset | None,
    progress: bool,
) -> FinetuneResult:
    offline_dir, out = Path(cfg.offline_run), folder.path
    identity = {
        "offline_run": str(offline_dir.resolve()),
        **{k: v for k, v in asdict(cfg).items() if k not in NOT_IDENTITY},
    }
    ckpt = folder.resume_or_start(identity, cfg.resume, progress=progress)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    if dataset is None:
        dataset = load_dataset(offline_run["dataset"], device=device, reward_norm=offline_run["reward_norm"],
                               reward_dim=IQLConfig.from_dict(offline_ckpt["agent"]["config"]).reward_dim)  # fmt: skip
    check_data(offline_run, offline_dir, dataset, action="fine-tune")  # the data the offline run trained on
    if not dataset.has_env:
        raise ValueError(
            f"dataset {dataset.dataset_id} names no environment (imported without --env), so there is nothing to "
            "collect online data in: fine-tuning needs one; re-import it with --env ENV_ID."
        )
    iql = IQLConfig.from_dict({**offline_ckpt["agent"]["config"], "cosine_actor_lr": False})
    plan = decide_threads(device)  # as the trainer does (utils.threads; IQL_THREADS overrides)
    for note in plan.apply():
        print(f"note: {note}", file=sys.stderr)
    agent = IQLAgent(dataset.obs_dim, dataset.act_dim, iql, device, mode=cfg.mode)
    agent.load_full_state(offline_ckpt["agent"])
    # The offline cosine schedule ends at a learning rate of 0: the online phase runs the actor
    # at its base learning rate again (the critics and value never decayed).
    for group in agent.actor_opt.param_groups:
        group["lr"] = iql.actor_lr
    offline_updates = agent.num_updates
    buffer = ReplayBuffer(dataset.transitions, len(dataset.transitions) + cfg.online_steps)
    sampler = torch.Generator(device=device).manual_seed(cfg.seed)
    act_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    train_log, eval_log = (
        CsvLog(out / "train_log.csv", ["env_step", *TRAIN_COLUMNS]),
        CsvLog(out / "eval_log.csv", EVAL_COLUMNS),
    )
    env_step, episode = 0, 0
    if ckpt is not None:
        agent.load_full_state(ckpt["agent"])  # restores the online actor learning rate too
        buffer.restore_online_part(ckpt["online"])
        sampler.set_state(ckpt["sampler"])
        act_gen.set_state(ckpt["act_gen"])
        set_rng_state(ckpt["rng"])
        env_step, episode = int(ckpt["env_step"]), int(ckpt["episode"])
        train_log.truncate_after(env_step)
        eval_log.truncate_after(env_step)
    else:  # a fresh run, or one killed before its first checkpoint: start its logs over
        folder.start(identity, [train_log, eval_log])
        if cfg.eval_episodes > 0:  # the offline policy's score, as step 0 of the online phase
            eval_log.append(
                {**evaluate(agent, dataset, cfg.eval_episodes, seed=cfg.seed * 100_003), "step": 0, "wall_s": 0.0}
            )

    env = dataset.make_env()
    space = env.observation_space
    first_id = int(dataset.transitions.episode_ids.max()) + 1
    bar = progress_bar(cfg.online_steps, env_step, f"online {offline_run['dataset']}", "env step", progress)
    t0 = time.perf_counter()
    checkpoint_due = False
    saved_at = env_step if ckpt is not None else -1

    def save(at: int, next_episode: int) -> None:
        nonlocal saved_at
        state = {
            "agent": agent.full_state(),
            "online": buffer.online_part(),
            "sampler": sampler.get_state(),
            "act_gen": act_gen.get_state(),
            "rng": rng_state(),
            "env_step": at,
            "episode": next_episode,
            "offline_updates": offline_updates,
        }
        folder.save(state, at)
        saved_at = at

    compiling = compile_note(agent.mode) if env_step < cfg.online_steps else None
    if progress and compiling and live_status():
        print(compiling, file=sys.stderr)
    folder.progress_step = env_step
    try:
        metrics: dict[str, Tensor] = {}
        obs = _flat(space, env.reset(seed=cfg.seed * 1_000_003 + episode)[0])
        while env_step < cfg.online_steps:
            with torch.no_grad():
                a = agent.act(
                    torch.as_tensor(obs, dtype=torch.float32, device=device)[None], epsilon=1.0, generator=act_gen
                )
            a_np = a[0].cpu().numpy()
            nxt, r, term, trunc, _ = env.step(dataset.action_scaler.to_env(a_np).astype(env.action_space.dtype))
            nxt = _flat(space, nxt)
            buffer.add(
                obs, a_np, float(r) * dataset.reward_scale + dataset.reward_shift, nxt, term, trunc, first_id + episode
            )
            plan.adjust()  # an adaptive plan: one thread fewer while another process holds a core
            for _ in range(cfg.updates_per_step):
                metrics = agent.update(buffer.sample(iql.batch_size, sampler))
            env_step += 1
            folder.progress_step = env_step
            bar.update(1)
            obs = nxt
            if env_step % cfg.log_every == 0:
                row = {k: float(v) for k, v in metrics.items() if v.dim() == 0}
                row.update(
                    step=env_step,
                    env_step=env_step,
                    actor_lr=float(agent.actor_opt.param_groups[0]["lr"]),
                    wall_s=time.perf_counter() - t0,
                )
                train_log.append(row)
            if cfg.eval_episodes > 0 and (env_step % cfg.eval_every == 0 or env_step == cfg.online_steps):
                result = evaluate(agent, dataset, cfg.eval_episodes, seed=cfg.seed * 100_003 + env_step)
                eval_log.append({**result, "step": env_step, "wall_s": time.perf_counter() - t0})
                bar.set_postfix(score=f"{result.get('score_mean', result['return_mean']):.1f}", refresh=False)
            if env_step % cfg.checkpoint_every == 0:
                checkpoint_due = True
            if term or trunc:
                episode += 1
                if checkpoint_due or env_step == cfg.online_steps:  # only at episode boundaries: exact resume
                    save(env_step, episode)
                    checkpoint_due = False
                obs = _flat(space, env.reset(seed=cfg.seed * 1_000_003 + episode)[0])
        if saved_at != cfg.online_steps:  # the budget ended mid-episode: the final agent, for the record
            save(env_step, episode + 1)  # (a resume of a finished run only reads it; no episode continues)
    except KeyboardInterrupt:
        raise Interrupted(out, folder.progress_step, folder.saved_step) from None
    finally:
        # the bar ends its line before any message that follows (an error's one line included)
        bar.close()
        env.close()

    return FinetuneResult(out, agent, dataset, buffer, train_log.frame(), eval_log.frame())


def done_table(result: FinetuneResult) -> str:
    """What ``main`` prints at the end: the folder and every evaluation."""
    table = result.eval_log.drop(columns=["wall_s"], errors="ignore").rename(
        columns={
            "step": "env step",
            "return_mean": "return",
            "return_std": "return sd",
            "score_mean": "score (%)",
            "score_std": "score sd",
        }  # fmt: skip
    )
    return (
        f"done: {result.out}; evaluations (return: sum of rewards; score: 0 random, 100 the reference policy):\n"
        + table.to_string(index=False, float_format=lambda v: f"{v:.1f}")
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial finetune", description=__doc__.split("\n\n")[0])
    add_fields(p, FinetuneConfig, required=("offline_run",), choices={"mode": MODES})
    return run_command(lambda: finetune(FinetuneConfig(**given(p.parse_args(argv), FinetuneConfig))), done_table)


if __name__ == "__main__":
    sys.exit(main())
