"""The naive offline baseline: off-policy SAC trained on a fixed dataset, and the failure it shows.

*naive* (one word for it everywhere: this module, ``python -m iql_tutorial naive``, the
``policy`` column of the results, the figures) is Soft Actor-Critic run offline: the same
actor-critic that made this book's datasets, trained on the dataset alone, with no environment
interaction. Its critic target ``r + gamma (min_i Q'_i(s', a') - alpha log pi(a'|s'))`` queries
actions ``a' ~ pi`` that the data may never contain; nothing corrects the critic there, the actor
climbs the errors, and the estimates grow without bound while the policy collapses. This is the
founding observation of offline RL (Fujimoto, Meger & Precup 2019, BCQ, Fig. 1; Kumar et al.
2019, "bootstrapping error"), and the failure IQL avoids by never querying an action outside
the data (its value is an expectile over the data's own actions, Eq. 5).

What a run measures, every ``log_every`` steps (``q_log.csv``):

- ``q_mean``: the mean over a fixed *probe* of the data's own (s, a) pairs (``probe_size``, 2,000
  by default, the same pairs for every seed and method) of the critics' estimate, the min over
  the twins (SAC's target uses that min; for IQL, the min over its replicas);
- ``mc_mean``: the discounted Monte Carlo return of the same pairs, computed once from the
  episodes in the training reward scale (``discounted_returns``): what a critic of the data's
  own behaviour should say.

With ``compare="awr"`` (the default) the same run also trains IQL (``IQLAgent.run_updates`` in
chunks of ``log_every``) on the same data with the same probe, so both curves come from one folder.
The final policies are evaluated with the package's evaluation (``runs.evaluation``: the normalized
score) every ``eval_every`` steps and at the end (``eval_log.csv``), and saved weights-only
(``<method>_policy.pt``, see ``runs.policies``).

Same networks, batch, reward normalisation and steps as IQL on the dataset: two hidden layers
of 256, batch 256, the dataset's preset reward normalisation (``locomotion``: 1000 / return
spread), gamma 0.99, Polyak rate 0.005, Adam 3e-4, a learned temperature aiming at entropy
``-dim(A)``.

Command line::

    python -m iql_tutorial naive --dataset iqlbook/hopper/medium-v0 --steps 10000 --seed 0 --out runs/naive/hopper-m-s0
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from iql_tutorial.core.agent import IQLAgent
from iql_tutorial.core.config import IQLConfig
from iql_tutorial.core.methods import identifier, label
from iql_tutorial.core.sac import SACCritic, SquashedGaussianActor, sac_update
from iql_tutorial.data import OfflineDataset, Transitions, load_dataset
from iql_tutorial.runs.evaluation import evaluate
from iql_tutorial.runs.policies import save_policy_file
from iql_tutorial.utils import atomic_write_text, resolve_device, seed_everything

METHODS = ("naive", "awr")  # identifiers of core.methods
COMPARE = ("awr", "none")
Q_COLUMNS = ["method", "step", "q_mean", "mc_mean", "critic_loss", "actor_loss", "alpha", "wall_s"]
EVAL_COLUMNS = ["method", "step", "return_mean", "return_std", "score_mean", "score_std", "wall_s"]
HORIZON_WEIGHT = 0.01  # a truncated episode's pair is kept when gamma^(steps left) < this


# --------------------------------------------------------------------------------------------
# Monte Carlo returns of the data's own (s, a) pairs
# --------------------------------------------------------------------------------------------
def discounted_returns(rewards: np.ndarray, episode_ids: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma r_{t+1} + ... `` up to the end of each row's episode, no bootstrap.

    Rows of one episode are contiguous and in time order (as ``Transitions`` holds them); a new
    ``episode_ids`` value starts a new sum. A truncated episode's sum stops at the truncation, so
    it underestimates the return near its end: ``probe_rows`` keeps only pairs far enough away.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(len(rewards), -1).sum(-1)
    ids = np.asarray(episode_ids)
    out = np.empty_like(r)
    g = 0.0
    for t in range(len(r) - 1, -1, -1):
        if t == len(r) - 1 or ids[t + 1] != ids[t]:
            g = 0.0
        g = r[t] + gamma * g
        out[t] = g
    return out


def steps_left(episode_ids: np.ndarray) -> np.ndarray:
    """For each row, how many rows of its episode follow it (0 on an episode's last row)."""
    ids = np.asarray(episode_ids)
    out = np.empty(len(ids), dtype=np.int64)
    n = 0
    for t in range(len(ids) - 1, -1, -1):
        n = 0 if t == len(ids) - 1 or ids[t + 1] != ids[t] else n + 1
        out[t] = n
    return out


def mc_horizon(gamma: float) -> int:
    """The fewest steps ``H`` with ``gamma^H < 0.01``: 459 for gamma 0.99."""
    return math.ceil(math.log(HORIZON_WEIGHT) / math.log(gamma))


def probe_rows(t: Transitions, gamma: float, size: int, seed: int = 0, horizon: int | None = None) -> np.ndarray:
    """Indices of ``size`` of the data's (s, a) pairs whose Monte Carlo return is trustworthy.

    A pair of an episode that ended by termination is always eligible (its return is complete).
    A pair of a truncated episode is eligible when at least ``H`` steps follow it in its episode,
    ``gamma^H < 0.01`` (``mc_horizon``: H = 459 for gamma 0.99; ``horizon`` sets another): the
    missing tail then weighs under 1% of a value.
    The draw uses its own generator (``seed``), so every seed and method sees the same probe.
    """
    ids = t.episode_ids.cpu().numpy()
    left = steps_left(ids)
    last = left == 0
    ended_by_termination = np.zeros(int(ids.max()) + 1, dtype=bool)
    ended_by_termination[ids[last]] = t.terminals.cpu().numpy()[last] > 0
    if horizon is None:
        horizon = mc_horizon(gamma) if gamma < 1 else len(ids)
    eligible = np.flatnonzero(ended_by_termination[ids] | (left >= horizon))
    if len(eligible) == 0:
        raise ValueError(
            f"no (s, a) pair has a trustworthy Monte Carlo return: every episode is truncated within {horizon} "
            "steps; use a dataset with longer or terminated episodes, or a shorter --mc-horizon."
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=min(size, len(eligible)), replace=False))


@dataclass
class Probe:
    """The fixed probe: observations, actions and Monte Carlo returns of some of the data's pairs."""

    obs: Tensor
    actions: Tensor
    mc: Tensor

    @property
    def mc_mean(self) -> float:
        return float(self.mc.mean())


def make_probe(t: Transitions, gamma: float, size: int, seed: int = 0, horizon: int | None = None) -> Probe:
    """The probe's pairs (``probe_rows``) with their discounted Monte Carlo returns."""
    idx = probe_rows(t, gamma, size, seed, horizon)
    mc = discounted_returns(t.rewards.cpu().numpy(), t.episode_ids.cpu().numpy(), gamma)[idx]
    i = torch.as_tensor(idx, device=t.device)
    return Probe(t.obs[i], t.actions[i], torch.as_tensor(mc, dtype=torch.float32, device=t.device))


@torch.no_grad()
def probe_q(critic: torch.nn.Module, probe: Probe) -> float:
    """Mean over the probe of the min over the critic's replicas (a host sync: logging only)."""
    q = critic(probe.obs, probe.actions)
    q = q.reshape(q.shape[0], q.shape[1], -1).sum(-1)  # [N, B] (IQL's critic is [N, B, k])
    return float(q.min(dim=0).values.mean())


# --------------------------------------------------------------------------------------------
# The naive learner: SAC's update on the fixed data
# --------------------------------------------------------------------------------------------
class NaiveSAC:
    """SAC's actor, twin critics, their targets and a learned temperature, updated from batches of
    the fixed dataset only (``update``); ``act`` and ``device`` let the package's evaluation run it."""

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig, device: torch.device) -> None:
        hidden = tuple(config.hidden_dims)
        self.config, self.device = config, device
        self.actor = SquashedGaussianActor(obs_dim, act_dim, hidden).to(device)
        self.critic = SACCritic(obs_dim, act_dim, hidden).to(device)
        self.critic_target = SACCritic(obs_dim, act_dim, hidden).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.zeros((), device=device, requires_grad=True)  # alpha = 1 at the start
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.actor_lr)

    def update(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One gradient step on critics, actor and temperature (``core.sac.sac_update``); detached
        losses (no host sync)."""
        return sac_update(self, batch, self.config.gamma, self.config.tau_target, generator)

    def run_updates(self, data: Transitions, count: int, generator: torch.Generator) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for _ in range(count):
            out = self.update(data.sample(self.config.batch_size, generator), generator)
        return out

    @torch.no_grad()
    def act(self, obs: Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Evaluation actions: the squashed mean, ``tanh(mu(s))`` (``epsilon`` is ignored)."""
        return torch.tanh(self.actor(obs)[0])


# --------------------------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------------------------
@dataclass
class NaiveConfig:
    """One naive run (and, with ``compare="awr"``, IQL on the same data and probe).

    Attributes:
        dataset: Minari dataset id.
        steps: gradient steps, the same for both methods.
        seed: seeds the networks, the sampler and the evaluation episodes.
        out: run folder.
        compare: ``awr`` also trains IQL (``IQLAgent.run_updates``) and logs its Q on the probe; ``none``.
        log_every: log the probe's Q every this many steps.
        eval_every: evaluate the policy every this many steps (and at the last step).
        eval_episodes: deterministic evaluation episodes (0: no evaluation).
        probe_size: how many of the data's (s, a) pairs the probe holds.
        device: auto, cpu or cuda[:N].
        mode: how IQL's update runs (``IQLAgent``'s mode: auto, eager, compile, cuda-graph).
        hidden_dims, batch_size: both methods' network widths and batch (IQL's defaults).
        mc_horizon: steps that must follow a probe pair of a truncated episode; None: ``mc_horizon(gamma)``.
    """

    dataset: str
    steps: int = 10_000
    seed: int = 0
    out: str = "runs/naive"
    compare: str = "awr"
    log_every: int = 1_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    probe_size: int = 2_000
    device: str = "auto"
    mode: str = "auto"
    hidden_dims: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    mc_horizon: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "log_every", "eval_every", "probe_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"NaiveConfig.{name}={getattr(self, name)} must be a positive integer.")
        if self.eval_episodes < 0:
            raise ValueError(f"NaiveConfig.eval_episodes={self.eval_episodes} must be >= 0 (0: no evaluation).")
        # ``iql``, the older spelling of ``awr``, still reads
        self.compare = identifier(self.compare)
        if self.compare not in COMPARE:
            raise ValueError(f"NaiveConfig.compare={self.compare!r}: choose one of {COMPARE}.")

    def methods(self) -> tuple[str, ...]:
        return ("naive", "awr") if self.compare == "awr" else ("naive",)

    def identity(self) -> dict[str, Any]:
        """What must match for a second call to continue the same run folder."""
        keep = (
            "dataset",
            "steps",
            "seed",
            "log_every",
            "eval_every",
            "eval_episodes",
            "probe_size",
            "batch_size",
            "mc_horizon",
        )
        return {k: v for k, v in asdict(self).items() if k in keep}


def _append(path: Path, columns: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def _drop_method(path: Path, method: str) -> None:
    """Remove a method's rows (an unfinished earlier attempt) before it runs again."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("method") != method]
        columns = list(rows[0].keys()) if rows else None
    if columns is None:
        path.unlink()
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def _learner(method: str, dataset: OfflineDataset, iql: IQLConfig, device: torch.device, mode: str) -> Any:
    if method == "naive":
        return NaiveSAC(dataset.obs_dim, dataset.act_dim, iql, device)
    return IQLAgent(dataset.obs_dim, dataset.act_dim, iql, device, mode=mode)


def run_method(cfg: NaiveConfig, method: str, dataset: OfflineDataset, probe: Probe, progress: bool = True) -> float:
    """Train ``method`` (naive or iql) for ``cfg.steps`` on the whole dataset; log, evaluate, save.
    Returns the wall time in seconds."""
    out = Path(cfg.out)
    iql = _iql_config(cfg)
    seed_everything(cfg.seed)
    learner = _learner(method, dataset, iql, dataset.transitions.device, cfg.mode)
    sampler = torch.Generator(device=dataset.transitions.device)
    sampler.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    critic = learner.critic
    _append(out / "q_log.csv", Q_COLUMNS, {"method": method, "step": 0, "q_mean": probe_q(critic, probe),
                                           "mc_mean": probe.mc_mean, "wall_s": 0.0})  # fmt: skip
    s = 0
    while s < cfg.steps:
        n = min(cfg.log_every - s % cfg.log_every, cfg.eval_every - s % cfg.eval_every, cfg.steps - s)
        m = learner.run_updates(dataset.transitions, n, sampler)
        s += n
        if s % cfg.log_every == 0 or s == cfg.steps:
            row = {"method": method, "step": s, "q_mean": probe_q(critic, probe), "mc_mean": probe.mc_mean,
                   "critic_loss": float(m["critic_loss"]), "actor_loss": float(m["actor_loss"]),
                   "alpha": float(m["alpha"]) if "alpha" in m else "", "wall_s": time.perf_counter() - t0}  # fmt: skip
            _append(out / "q_log.csv", Q_COLUMNS, row)
            if progress:
                print(f"{method} step {s}: Q {row['q_mean']:.4g} (Monte Carlo {probe.mc_mean:.4g})", file=sys.stderr)
        if cfg.eval_episodes > 0 and dataset.has_env and (s % cfg.eval_every == 0 or s == cfg.steps):
            res = evaluate(cast(IQLAgent, learner), dataset, cfg.eval_episodes, seed=cfg.seed * 100_003 + s)
            _append(out / "eval_log.csv", EVAL_COLUMNS, {**res, "method": method, "step": s,
                                                         "wall_s": time.perf_counter() - t0})  # fmt: skip
            if progress:
                print(f"{method} step {s}: score {res.get('score_mean', res['return_mean']):.1f}", file=sys.stderr)
    wall = time.perf_counter() - t0
    info = {"dataset": cfg.dataset, "steps": cfg.steps, "seed": cfg.seed, "wall_s": round(wall, 1)}
    save_policy_file(out / f"{method}_policy.pt", method, learner.actor, info)
    return wall


def _iql_config(cfg: NaiveConfig) -> IQLConfig:
    """IQL's preset for the dataset (locomotion: expectile 0.7, beta 3), ``total_steps = steps``.
    The naive learner reads its widths, batch, gamma, Polyak rate and learning rates from it."""
    maze = "maze" in cfg.dataset.lower()
    return IQLConfig(expectile=0.9 if maze else 0.7, beta=10.0 if maze else 3.0, total_steps=cfg.steps,
                     hidden_dims=tuple(cfg.hidden_dims), batch_size=cfg.batch_size)  # fmt: skip


def reward_norm_for(dataset_id: str) -> str:
    """The dataset's preset reward normalisation, as IQL's trainer uses it."""
    return "shift" if "maze" in dataset_id.lower() else "locomotion"


def naive_run(
    cfg: NaiveConfig, dataset: OfflineDataset | None = None, progress: bool = True, command: str | None = None
) -> Path:
    """Run every method of ``cfg`` into ``cfg.out``; a method finished earlier (``run.json``'s
    ``done``) is skipped, an unfinished one is started over: the run resumes method by method."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "run.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    old = {k: v for k, v in meta.get("config", {}).items() if k in cfg.identity()}  # (fields it knew)
    if any(old[k] != cfg.identity()[k] for k in old):
        diff = ", ".join(
            f"{k} {v!r} there, {cfg.identity()[k]!r} now" for k, v in old.items() if v != cfg.identity()[k]
        )
        raise ValueError(f"{out} holds another naive run ({diff}); choose another --out or delete the folder.")
    meta["config"] = asdict(cfg)
    meta.setdefault("done", {})
    meta["command"] = command or "naive_run(NaiveConfig(...)) from Python"
    meta["hardware"] = _hardware()
    meta["commit"] = _commit()
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    device = resolve_device(cfg.device)
    if dataset is None:
        dataset = load_dataset(cfg.dataset, device=device, reward_norm=reward_norm_for(cfg.dataset))
    probe = make_probe(dataset.transitions, _iql_config(cfg).gamma, cfg.probe_size, horizon=cfg.mc_horizon)
    for method in cfg.methods():
        if method in meta["done"]:
            continue
        for name in ("q_log.csv", "eval_log.csv"):
            _drop_method(out / name, method)
        wall = run_method(cfg, method, dataset, probe, progress)
        meta["done"][method] = {"wall_s": round(wall, 1), "command": meta["command"], "commit": meta["commit"]}
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return out


# --------------------------------------------------------------------------------------------
# Results files (data/results/naive-*.csv|json), read by the book
# --------------------------------------------------------------------------------------------
SCORE_COLUMNS = ["dataset", "policy", "seed", "step", "return_mean", "return_std", "score_mean", "score_std", "wall_s"]
PROBE_COLUMNS = ["dataset", "policy", "seed", "step", "q_mean", "mc_mean", "wall_s"]


def collect(run_dirs: list[str | Path]) -> tuple[Any, Any, dict[str, Any]]:
    """The finished methods of naive run folders as two tables and their provenance.

    ``scores``: one row per evaluation, the columns of the results sweep (``SCORE_COLUMNS``; the
    ``policy`` column holds the display label: ``naive``, ``IQL``). ``probe``: the probe's mean Q and
    Monte Carlo return over training (``PROBE_COLUMNS``). ``provenance``: each run's command, hardware,
    settings and wall time per method. Unfinished methods are left out."""
    import pandas as pd

    scores, probe, prov = [], [], {}
    for d in map(Path, run_dirs):
        meta = json.loads((d / "run.json").read_text())
        cfg, done = meta["config"], meta.get("done", {})
        if not done:
            continue
        q = pd.read_csv(d / "q_log.csv")
        ev = pd.read_csv(d / "eval_log.csv") if (d / "eval_log.csv").exists() else pd.DataFrame(columns=EVAL_COLUMNS)
        for method in done:
            common = {"dataset": cfg["dataset"], "policy": label(method), "seed": cfg["seed"]}
            probe += [{**common, **r} for r in q[q["method"] == method].to_dict("records")]
            scores += [{**common, **r} for r in ev[ev["method"] == method].to_dict("records")]
        prov[d.name] = {
            "hardware": meta.get("hardware"),
            "steps": cfg["steps"],
            "wall_s": {m: v["wall_s"] for m, v in done.items()},
            "command": {m: v.get("command", meta.get("command")) for m, v in done.items()},
            "commit": {m: v.get("commit", meta.get("commit")) for m, v in done.items()},
        }
    return pd.DataFrame(scores, columns=SCORE_COLUMNS), pd.DataFrame(probe, columns=PROBE_COLUMNS), prov


def _commit() -> str | None:
    """The package checkout's short commit, if it is a git checkout (provenance only)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _hardware() -> str:
    import platform

    return f"{platform.machine()} {platform.processor() or 'CPU'}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial naive", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="Minari dataset id, e.g. iqlbook/hopper/medium-v0")
    p.add_argument("--steps", type=int, default=10_000, help="gradient steps, the same for naive and IQL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder (a finished method in it is skipped: resumable)")
    p.add_argument("--compare", choices=COMPARE, default="awr", help="also train IQL on the same data and probe")
    p.add_argument("--log-every", type=int, default=1_000, help="log the probe's Q every this many steps")
    p.add_argument("--eval-every", type=int, default=10_000, help="evaluate every this many steps (and at the end)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--probe-size", type=int, default=2_000, help="the data's (s, a) pairs in the probe")
    p.add_argument(
        "--mc-horizon",
        type=int,
        default=None,
        help="steps that must follow a probe pair of a truncated episode (default: 459 for gamma 0.99)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--mode", default="auto", choices=("auto", "eager", "compile", "cuda-graph"),
                   help="how IQL's update runs")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        cfg = NaiveConfig(**{k: v for k, v in vars(ns).items()})
        from iql_tutorial.utils.threads import decide_threads

        decide_threads(resolve_device(cfg.device)).apply()
        out = naive_run(
            cfg, command=" ".join(["python -m iql_tutorial naive", *(argv if argv is not None else sys.argv[1:])])
        )
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"done: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
