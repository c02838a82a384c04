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
from iql_tutorial.core.runner import MODES
from iql_tutorial.data import OfflineDataset, load_dataset
from iql_tutorial.data.buffer import ReplayBuffer
from iql_tutorial.data.loader import flatten_obs
from iql_tutorial.runs.cli import add_fields, given
from iql_tutorial.runs.csvlog import CsvLog
from iql_tutorial.runs.evaluation import evaluate
from iql_tutorial.runs.folder import Interrupted, RunFolder, differences, read_run_json, run_command
from iql_tutorial.runs.train import EVAL_COLUMNS, TRAIN_COLUMNS, check_data, compile_note, normalize_previous
from iql_tutorial.utils import (
    live_status,
    load_checkpoint,
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
    identity = {
        "offline_run": str(Path(cfg.offline_run).resolve()),
        **{k: v for k, v in asdict(cfg).items() if k not in NOT_IDENTITY},
    }
    ckpt = folder.resume_or_start(identity, cfg.resume, progress=progress)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    dataset = _online_dataset(cfg, offline_run, offline_ckpt, dataset, device)
    plan = decide_threads(device)  # as the trainer does (utils.threads; IQL_THREADS overrides)
    for note in plan.apply():
        print(f"note: {note}", file=sys.stderr)
    online = Online(cfg, folder, _offline_agent(cfg, offline_ckpt, dataset, device), dataset)
    logs = (CsvLog(folder.path / "train_log.csv", ["env_step", *TRAIN_COLUMNS]),
            CsvLog(folder.path / "eval_log.csv", EVAL_COLUMNS))  # fmt: skip
    if ckpt is not None:
        online.restore(ckpt, logs)
    else:  # a fresh run, or one killed before its first checkpoint: start its logs over
        folder.start(identity, list(logs))
        if cfg.eval_episodes > 0:  # the offline policy's score, as step 0 of the online phase
            result = evaluate(online.agent, dataset, cfg.eval_episodes, seed=cfg.seed * 100_003)
            logs[1].append({**result, "step": 0, "wall_s": 0.0})
    bar = progress_bar(cfg.online_steps, online.env_step, f"online {offline_run['dataset']}", "env step", progress)
    compiling = compile_note(online.agent.mode) if online.env_step < cfg.online_steps else None
    if progress and compiling and live_status():
        print(compiling, file=sys.stderr)
    try:
        _online_loop(online, plan, logs, bar)
    except KeyboardInterrupt:
        raise Interrupted(folder.path, folder.progress_step, folder.saved_step) from None
    finally:
        bar.close()  # the bar ends its line before any message that follows (an error's one line included)
    return FinetuneResult(folder.path, online.agent, dataset, online.buffer, logs[0].frame(), logs[1].frame())


def _online_dataset(
    cfg: FinetuneConfig,
    offline_run: dict[str, Any],
    offline_ckpt: dict[str, Any],
    dataset: OfflineDataset | None,
    device: torch.device,
) -> OfflineDataset:
    """The offline run's dataset (loaded as it trained on it, unless given), checked to be the data
    the offline run trained on, with an environment to collect online data in."""
    if dataset is None:
        dataset = load_dataset(offline_run["dataset"], device=device, reward_norm=offline_run["reward_norm"],
                               reward_dim=IQLConfig.from_dict(offline_ckpt["agent"]["config"]).reward_dim)  # fmt: skip
    check_data(offline_run, Path(cfg.offline_run), dataset, action="fine-tune")  # the data the offline run trained on
    if not dataset.has_env:
        raise ValueError(
            f"dataset {dataset.dataset_id} names no environment (imported without --env), so there is nothing to "
            "collect online data in: fine-tuning needs one; re-import it with --env ENV_ID."
        )
    return dataset


def _offline_agent(
    cfg: FinetuneConfig, offline_ckpt: dict[str, Any], dataset: OfflineDataset, device: torch.device
) -> IQLAgent:
    """The offline run's final agent, its actor at its base learning rate again: the offline cosine
    schedule ended at 0 (the critics and value never decayed). ``set_lr`` reaches the update in
    either update order."""
    iql = IQLConfig.from_dict({**offline_ckpt["agent"]["config"], "cosine_actor_lr": False})
    agent = IQLAgent(dataset.obs_dim, dataset.act_dim, iql, device, mode=cfg.mode)
    agent.load_full_state(offline_ckpt["agent"])
    agent.set_lr(actor=iql.actor_lr)
    return agent


class Online:
    """The online phase's moving parts: the agent, the mixed buffer, the generators and the clock
    (``env_step``, ``episode``); what a checkpoint keeps and ``restore`` reads back."""

    def __init__(self, cfg: FinetuneConfig, folder: RunFolder, agent: IQLAgent, dataset: OfflineDataset) -> None:
        device = agent.device
        self.cfg, self.folder, self.agent, self.dataset = cfg, folder, agent, dataset
        self.offline_updates = agent.num_updates
        self.buffer = ReplayBuffer(dataset.transitions, len(dataset.transitions) + cfg.online_steps)
        self.sampler = torch.Generator(device=device).manual_seed(cfg.seed)
        self.act_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.env_step, self.episode, self.saved_at = 0, 0, -1

    def restore(self, ckpt: dict[str, Any], logs: tuple[CsvLog, CsvLog]) -> None:
        """Continue from a checkpoint of this run; the logs lose the rows written after it."""
        self.agent.load_full_state(ckpt["agent"])
        self.buffer.restore_online_part(ckpt["online"])
        self.sampler.set_state(ckpt["sampler"])
        self.act_gen.set_state(ckpt["act_gen"])
        set_rng_state(ckpt["rng"])
        self.env_step, self.episode = int(ckpt["env_step"]), int(ckpt["episode"])
        self.saved_at = self.env_step
        for log in logs:
            log.truncate_after(self.env_step)

    def save(self, next_episode: int) -> None:
        """A checkpoint at ``env_step`` (at an episode's end: a resume starts the next one)."""
        state = {
            "agent": self.agent.full_state(),
            "online": self.buffer.online_part(),
            "sampler": self.sampler.get_state(),
            "act_gen": self.act_gen.get_state(),
            "rng": rng_state(),
            "env_step": self.env_step,
            "episode": next_episode,
            "offline_updates": self.offline_updates,
        }
        self.folder.save(state, self.env_step)
        self.saved_at = self.env_step

    def reset(self, env: gym.Env) -> np.ndarray:
        """The first observation of the current episode (seeded by its number)."""
        return _flat(env.observation_space, env.reset(seed=self.cfg.seed * 1_000_003 + self.episode)[0])

    def step(self, env: gym.Env, obs: np.ndarray, first_id: int) -> tuple[np.ndarray, bool]:
        """One environment step with the policy's sampled action, stored in the buffer as the
        offline data is (its reward transformed alike): the next observation, and whether the
        episode ended."""
        device, dataset = self.agent.device, self.dataset
        a = self.agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device)[None], 1.0, self.act_gen)
        a_np = a[0].cpu().numpy()
        nxt, r, term, trunc, _ = env.step(dataset.action_scaler.to_env(a_np).astype(env.action_space.dtype))
        nxt = _flat(env.observation_space, nxt)
        reward = float(r) * dataset.reward_scale + dataset.reward_shift
        self.buffer.add(obs, a_np, reward, nxt, term, trunc, first_id + self.episode)
        self.env_step += 1
        self.folder.progress_step = self.env_step
        return nxt, bool(term or trunc)


def _online_loop(online: Online, plan: Any, logs: tuple[CsvLog, CsvLog], bar: Any) -> None:
    """Alternate one environment step and ``updates_per_step`` updates on the mixed buffer up to
    ``online_steps``; log, evaluate and checkpoint (at episode ends: exact resume) on the way."""
    cfg, agent, (train_log, eval_log) = online.cfg, online.agent, logs
    env = online.dataset.make_env()
    first_id = int(online.dataset.transitions.episode_ids.max()) + 1
    t0, checkpoint_due = time.perf_counter(), False
    online.folder.progress_step = online.env_step
    metrics: dict[str, Tensor] = {}
    try:
        obs = online.reset(env)
        while online.env_step < cfg.online_steps:
            obs, ended = online.step(env, obs, first_id)
            plan.adjust()  # an adaptive plan: one thread fewer while another process holds a core
            for _ in range(cfg.updates_per_step):
                metrics = agent.update(online.buffer.sample(agent.config.batch_size, online.sampler))
            bar.update(1)
            env_step = online.env_step
            if env_step % cfg.log_every == 0:
                row = {k: float(v) for k, v in metrics.items() if v.dim() == 0}
                lr = float(agent.actor_opt.param_groups[0]["lr"])
                train_log.append({**row, "step": env_step, "env_step": env_step, "actor_lr": lr,
                                  "wall_s": time.perf_counter() - t0})  # fmt: skip
            if cfg.eval_episodes > 0 and (env_step % cfg.eval_every == 0 or env_step == cfg.online_steps):
                result = evaluate(agent, online.dataset, cfg.eval_episodes, seed=cfg.seed * 100_003 + env_step)
                eval_log.append({**result, "step": env_step, "wall_s": time.perf_counter() - t0})
                bar.set_postfix(score=f"{result.get('score_mean', result['return_mean']):.1f}", refresh=False)
            checkpoint_due = checkpoint_due or env_step % cfg.checkpoint_every == 0
            if ended:
                online.episode += 1
                if checkpoint_due or env_step == cfg.online_steps:  # only at episode boundaries: exact resume
                    online.save(online.episode)
                    checkpoint_due = False
                obs = online.reset(env)
        if online.saved_at != cfg.online_steps:  # the budget ended mid-episode: the final agent, for the record
            online.save(online.episode + 1)  # (a resume of a finished run only reads it; no episode continues)
    finally:
        env.close()


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
