"""A compact Soft Actor-Critic (Haarnoja et al., 2018), used only to train behaviour policies.

The offline datasets of this project are made as D4RL made theirs: a policy is trained online
with SAC, snapshots of it are rolled out ("medium", "expert"), and the replay buffer of the
training run up to the medium snapshot is kept ("medium-replay"). This module is that SAC:

- a tanh-squashed Gaussian actor ``a = tanh(mu + sigma * eps)`` with the change-of-variables
  correction in its log-probability;
- twin critics held as one batched network: the package's ``ReplicatedCritic`` (weights
  ``[2, in, out]``, one ``baddbmm`` per layer);
  (these two and the losses live in ``core.sac``, shared with the naive offline baseline);
- the package's device replay buffer (``data.buffer``) and action scaler (``data.loader``);
- an automatically tuned entropy temperature ``alpha`` aiming at entropy ``-dim(A)``;
- Polyak-averaged target critics; losses logged every ``log_every`` steps (no host sync per step).

Small networks (64x64 to 128x128) are enough for Pendulum and the MuJoCo locomotion tasks at
the "medium" level and keep a CPU run to minutes or tens of minutes. Run as a script::

    python -m iql_tutorial sac --env Pendulum-v1 --steps 20000 --out data/behaviour/pendulum
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from iql_tutorial.core.sac import (  # noqa: F401  (the losses re-exported: the SAC pieces keep their names here)
    SACCritic,
    SquashedGaussianActor,
    actor_loss,
    alpha_loss,
    critic_loss,
    critic_target,
    sac_update,
    squashed_log_prob,
)
from iql_tutorial.data.buffer import ReplayBuffer
from iql_tutorial.data.loader import ActionScaler
from iql_tutorial.utils import atomic_write_bytes, atomic_write_text, box, load_checkpoint, save_checkpoint


# --------------------------------------------------------------------------------------------
# Agent (the networks and losses are shared with the naive offline baseline, runs.naive, so they
# live in core.sac; their names stay importable from here)
# --------------------------------------------------------------------------------------------
@dataclass
class SACConfig:
    """Hyperparameters of SAC (the usual ones; networks smaller than 256x256 for CPU speed)."""

    hidden: tuple[int, ...] = (128, 128)
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    start_steps: int = 5000  # uniform random actions before the first update
    update_every: int = 1  # one gradient step per `update_every` environment steps
    init_alpha: float = 1.0
    target_entropy: float | None = None  # default: -act_dim
    log_every: int = 1000


class SAC:
    """Actor, twin critics, their targets, a learned temperature and the three optimisers."""

    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.config = config
        self.actor = SquashedGaussianActor(obs_dim, act_dim, config.hidden)
        self.critic = SACCritic(obs_dim, act_dim, config.hidden)
        self.critic_target = SACCritic(obs_dim, act_dim, config.hidden)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.init_alpha), requires_grad=True)
        self.target_entropy = float(config.target_entropy if config.target_entropy is not None else -act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.lr)

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One gradient step on critics, actor and temperature (``core.sac.sac_update``); returns
        detached losses (no sync)."""
        return sac_update(self, batch, self.config.gamma, self.config.tau)

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])


# --------------------------------------------------------------------------------------------
# Replay buffer: the whole training history (it becomes the "medium-replay" dataset)
# --------------------------------------------------------------------------------------------
def replay_arrays(buf: ReplayBuffer, upto: int | None = None) -> dict[str, np.ndarray]:
    """The first ``upto`` transitions of the run as numpy arrays (actions in [-1, 1]), the form
    ``replay.npz`` and ``episodes_from_replay`` use."""
    t = buf.filled(upto)
    return tensors_to_replay({k: getattr(t, k) for k in ("obs", "actions", "rewards", "next_obs", "terminals",
                                                          "timeouts")})  # fmt: skip


def tensors_to_replay(part: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """A checkpoint's buffer tensors in the numpy form of ``replay.npz``."""
    return {
        "obs": part["obs"].numpy(),
        "actions": part["actions"].numpy(),
        "rewards": part["rewards"].reshape(len(part["rewards"]), -1)[:, 0].numpy(),
        "next_obs": part["next_obs"].numpy(),
        "terminals": part["terminals"].numpy() > 0,
        "truncations": part["timeouts"].numpy() > 0,
    }


# --------------------------------------------------------------------------------------------
# Saving and loading behaviour policies
# --------------------------------------------------------------------------------------------
def save_policy(actor: SquashedGaussianActor, path: str | Path, info: dict[str, Any] | None = None) -> None:
    """``path.pt`` (the actor's state dict) and ``path.json`` (architecture + ``info``)."""
    path = Path(path)
    atomic_write_bytes(path.with_suffix(".pt"), lambda f: torch.save(actor.state_dict(), f))
    meta = {"obs_dim": actor.obs_dim, "act_dim": actor.act_dim, "hidden": list(actor.hidden), **(info or {})}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")


def load_policy(path: str | Path) -> tuple[SquashedGaussianActor, dict[str, Any]]:
    """The actor saved by :func:`save_policy` and its json metadata."""
    path = Path(path)
    if not path.with_suffix(".pt").exists():
        raise FileNotFoundError(
            f"No behaviour policy at {path.with_suffix('.pt')}: train it with `python -m iql_tutorial sac`."
        )
    meta = json.loads(path.with_suffix(".json").read_text())
    actor = SquashedGaussianActor(meta["obs_dim"], meta["act_dim"], tuple(meta["hidden"]))
    actor.load_state_dict(torch.load(path.with_suffix(".pt"), map_location="cpu", weights_only=True))
    actor.eval()
    return actor, meta


# --------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------
def to_env_action(a: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """Map a policy action in [-1, 1] onto the environment's bounds (``ActionScaler.to_env``)."""
    return ActionScaler(space.low, space.high).to_env(a)


def evaluate_policy(
    actor: SquashedGaussianActor, env_id: str, episodes: int, seed: int, deterministic: bool = True
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes, env reset with ``seed + i``."""
    env = gym.make(env_id)
    space = box(env.action_space)
    gen = torch.Generator().manual_seed(seed)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            a = actor.act(obs, deterministic=deterministic, generator=gen)
            obs, r, term, trunc, _ = env.step(to_env_action(a, space))
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    env.close()
    return np.asarray(returns)


@dataclass
class TrainState:
    """What a resumed run needs besides the agent: progress, logs, RNGs."""

    step: int = 0
    episode: int = 0
    cpu_seconds: float = 0.0
    curve: list[tuple[int, float, int]] = field(default_factory=list)  # (env step, return, length)
    evals: list[tuple[int, float, float]] = field(default_factory=list)  # (env step, mean, std)


def train_sac(
    env_id: str,
    total_steps: int,
    out_dir: str | Path,
    config: SACConfig | None = None,
    seed: int = 0,
    snapshot_every: int = 10_000,
    eval_episodes: int = 5,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 25_000,
    progress: bool = True,
) -> tuple[SAC, ReplayBuffer, TrainState]:
    """Train SAC online on ``env_id`` for ``total_steps`` environment steps.

    Writes to ``out_dir``: ``snapshots/step_<N>.pt/.json`` (actor every ``snapshot_every`` steps,
    with its deterministic evaluation return), ``training_curve.csv`` (env step, episode return,
    length) and ``evals.csv``. With ``checkpoint_dir``, a full checkpoint (agent, replay buffer,
    RNGs) is written every ``checkpoint_every`` steps and a rerun resumes from it. The replay
    buffer (all transitions) is saved there as ``replay.npz`` at the end.
    """
    torch.set_num_threads(1)
    config = config or SACConfig()
    out_dir = Path(out_dir)
    (out_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(
        json.dumps({"env_id": env_id, "total_steps": total_steps, "seed": seed, **asdict(config)}, indent=2) + "\n"
    )
    env = gym.make(env_id)
    try:
        return _train_sac(env, env_id, total_steps, out_dir, config, seed, snapshot_every, eval_episodes,
                          checkpoint_dir, checkpoint_every, progress)  # fmt: skip
    finally:
        env.close()


def _train_sac(
    env: gym.Env,
    env_id: str,
    total_steps: int,
    out_dir: Path,
    config: SACConfig,
    seed: int,
    snapshot_every: int,
    eval_episodes: int,
    checkpoint_dir: str | Path | None,
    checkpoint_every: int,
    progress: bool,
) -> tuple[SAC, ReplayBuffer, TrainState]:
    """``train_sac``'s loop: environment steps, updates, snapshots and checkpoints."""
    space = box(env.action_space)
    obs_dim, act_dim = box(env.observation_space).shape[0], space.shape[0]
    agent = SAC(obs_dim, act_dim, config, seed=seed)
    buf = ReplayBuffer.empty(total_steps, obs_dim, act_dim)
    state = TrainState()
    rng = np.random.default_rng(seed)  # the uniform actions of the first start_steps
    gen = torch.Generator().manual_seed(seed)  # the policy's action noise
    sampler = torch.Generator().manual_seed(seed + 1)  # the batches
    ckpt = Path(checkpoint_dir) / "sac_checkpoint.pt" if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = _resume(load_checkpoint_file(ckpt), agent, buf, rng, gen, sampler)
    obs, _ = env.reset(seed=seed + 1_000_000 + state.episode)
    ep_ret, ep_len = 0.0, 0
    t0 = time.process_time() - state.cpu_seconds
    bar = tqdm(total=total_steps, initial=state.step, desc=f"SAC {env_id}", disable=not progress, mininterval=2.0)
    logs: dict[str, Tensor] = {}
    while state.step < total_steps:
        if state.step < config.start_steps:
            a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        else:
            a = agent.actor.act(obs, generator=gen)
        obs2, r, term, trunc, _ = env.step(to_env_action(a, space))
        buf.add(obs, a, float(r), obs2, bool(term), bool(trunc), state.episode)
        ep_ret += float(r)
        ep_len += 1
        state.step += 1
        obs = obs2
        if term or trunc:
            state.curve.append((state.step, ep_ret, ep_len))
            state.episode += 1
            obs, _ = env.reset(seed=seed + 1_000_000 + state.episode)
            ep_ret, ep_len = 0.0, 0
        if state.step >= config.start_steps and state.step % config.update_every == 0:
            logs = agent.update(buf.sample(config.batch_size, sampler))
        if state.step % config.log_every == 0 and logs and state.curve:
            bar.set_postfix(ret=f"{state.curve[-1][1]:.0f}", alpha=f"{float(logs['alpha']):.3f}", refresh=False)
        bar.update(1)
        if state.step % snapshot_every == 0:
            state.cpu_seconds = time.process_time() - t0
            _snapshot(agent, env_id, out_dir, state, eval_episodes, {"seed": seed, "sac_config": asdict(config)})
        if ckpt is not None and state.step % checkpoint_every == 0 and state.step < total_steps:
            state.cpu_seconds = time.process_time() - t0
            # a resumed run starts a fresh episode, as this one does: the cut episode is marked
            # truncated *before* saving, so the saved buffer has the same episode ends
            if ep_len:
                buf.storage.timeouts[buf.size - 1] = 1.0
            _save_checkpoint(ckpt, agent, buf, state, rng, gen, sampler)
            obs, _ = env.reset(seed=seed + 1_000_000 + state.episode)
            ep_ret, ep_len = 0.0, 0
    bar.close()
    state.cpu_seconds = time.process_time() - t0
    _write_curves(out_dir, state)
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        np.savez(Path(checkpoint_dir) / "replay.npz", **replay_arrays(buf))  # type: ignore[arg-type]
        assert ckpt is not None
        _save_checkpoint(ckpt, agent, buf, state, rng, gen, sampler)
    return agent, buf, state


def _resume(
    saved: dict[str, Any],
    agent: SAC,
    buf: ReplayBuffer,
    rng: np.random.Generator,
    gen: torch.Generator,
    sampler: torch.Generator,
) -> TrainState:
    """Restore a training checkpoint (``load_checkpoint_file``) into the agent, the buffer and the
    generators; the progress it records."""
    agent.load_state_dict(saved["agent"])
    part = saved["buffer"]
    for k, v in part.items():
        getattr(buf.storage, k)[: len(v)] = v
    buf.size = len(part["obs"])
    st = saved["state"]
    rng.bit_generator.state = saved["rng"]
    gen.set_state(saved["gen"])
    sampler.set_state(saved["sampler"])
    torch.set_rng_state(saved["torch_rng"])
    return TrainState(int(st["step"]), int(st["episode"]), float(st["cpu_seconds"]),
                      [tuple(x) for x in st["curve"]], [tuple(x) for x in st["evals"]])  # fmt: skip


def _snapshot(
    agent: SAC, env_id: str, out_dir: Path, state: TrainState, eval_episodes: int, info: dict[str, Any]
) -> None:
    """Evaluate the actor (deterministic), save it as ``snapshots/step_<N>`` with its return, and
    rewrite the curves."""
    rets = evaluate_policy(agent.actor, env_id, eval_episodes, seed=10_000 + state.step)
    state.evals.append((state.step, float(rets.mean()), float(rets.std())))
    save_policy(
        agent.actor,
        out_dir / "snapshots" / f"step_{state.step:07d}",
        {"env_id": env_id, "env_steps": state.step, "eval_return_mean": float(rets.mean()),
         "eval_return_std": float(rets.std()), "eval_episodes": eval_episodes, "cpu_seconds": state.cpu_seconds,
         **info},
    )  # fmt: skip
    _write_curves(out_dir, state)


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """A training checkpoint (agent, replay buffer, progress, RNG states): tensors and plain
    containers only, loaded with ``weights_only=True`` (no pickled classes, no code)."""
    return load_checkpoint(path)


def _save_checkpoint(
    path: Path, agent: SAC, buf: ReplayBuffer, state: TrainState, rng: Any, gen: Any, sampler: Any
) -> None:
    t = buf.filled()
    save_checkpoint(
        path,
        {
            "agent": agent.state_dict(),
            "buffer": {
                k: getattr(t, k).clone()
                for k in ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts", "episode_ids")
            },  # fmt: skip
            "state": asdict(state),
            "rng": rng.bit_generator.state,
            "gen": gen.get_state(),
            "sampler": sampler.get_state(),
            "torch_rng": torch.get_rng_state(),
        },
    )


def _write_curves(out_dir: Path, state: TrainState) -> None:
    rows = ["env_step,episode_return,episode_length"] + [f"{s},{r:.4f},{n}" for s, r, n in state.curve]
    atomic_write_text(out_dir / "training_curve.csv", "\n".join(rows) + "\n")
    rows = ["env_step,eval_return_mean,eval_return_std"] + [f"{s},{m:.4f},{sd:.4f}" for s, m, sd in state.evals]
    atomic_write_text(out_dir / "evals.csv", "\n".join(rows) + "\n")
    atomic_write_text(out_dir / "cpu_seconds.txt", f"{state.cpu_seconds:.1f}\n")


def read_csv(path: str | Path) -> dict[str, np.ndarray]:
    """A numeric CSV with a header as a dict of columns."""
    with open(path) as f:
        rows = list(csv.reader(f))
    cols = rows[0]
    data = np.asarray(rows[1:], dtype=np.float64).reshape(-1, len(cols))
    return {c: data[:, i] for i, c in enumerate(cols)}


def _bad_flags(a: argparse.Namespace) -> str | None:
    """What is wrong with the command line's flags, in one line (None: nothing)."""
    for flag, value, least in (("--steps", a.steps, 1), ("--start-steps", a.start_steps, 0),
                               ("--update-every", a.update_every, 1), ("--snapshot-every", a.snapshot_every, 1),
                               ("--eval-episodes", a.eval_episodes, 0), ("--hidden", min(a.hidden), 1)):  # fmt: skip
        if value < least:
            return f"{flag} {value}: must be {'a positive integer' if least else '0 or more'}."
    for flag, folder in (("--out", a.out), ("--checkpoint-dir", a.checkpoint_dir)):
        if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
            return f"{flag} {folder} is a file, not a folder; choose another {flag}."
    import iql_tutorial.envs  # noqa: F401  (registers the project's own environments)

    try:
        env = gym.make(a.env)
    except Exception as e:
        return (
            f"--env {a.env}: the environment cannot be made ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
            "check the id (gymnasium.pprint_registry() lists them)."
        )
    try:
        box(env.action_space)
        box(env.observation_space)
    except ValueError as e:
        return f"--env {a.env}: SAC here needs continuous (Box) actions and observations: {e}"
    finally:
        env.close()
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m iql_tutorial sac",
        description="Train a SAC behaviour policy (snapshots, curves, replay buffer).",
    )
    p.add_argument("--env", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, help="folder for snapshots and curves (e.g. data/behaviour/hopper)")
    p.add_argument("--checkpoint-dir", default=None, help="folder for the resumable checkpoint and replay.npz")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-steps", type=int, default=5000)
    p.add_argument("--update-every", type=int, default=1)
    p.add_argument("--snapshot-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    a = p.parse_args(argv)
    problem = _bad_flags(a)
    if problem is not None:  # before any folder is made or anything trains
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    cfg = SACConfig(hidden=tuple(a.hidden), start_steps=a.start_steps, update_every=a.update_every)
    _, _, st = train_sac(
        a.env, a.steps, a.out, cfg, seed=a.seed, snapshot_every=a.snapshot_every,
        eval_episodes=a.eval_episodes, checkpoint_dir=a.checkpoint_dir,
    )  # fmt: skip
    print(f"done: {st.step} steps, {st.episode} episodes, {st.cpu_seconds:.0f} s CPU; evals: {st.evals[-3:]}")


if __name__ == "__main__":
    main()
