"""Chapter 7's tau x beta map, committed: IQL for every (expectile, inverse temperature), and BC, several seeds.

The method is the chapter's own (its ``ExtraActor`` and ``train_sweep``, copied here;
tests/test_sensitivity_grid.py checks that the copies train the same parameters as the chapter's
cells): for each expectile one ``IQLAgent`` trains its value and critics with the first beta, and
one extra actor per other beta learns from the same batches with the weights
exp(beta (min_i Q_target_i - V)) computed before the agent's update, as ``update_order="joint"``
does. Behaviour cloning is one more extra actor with beta = 0 (every weight 1), trained beside the
first expectile's agent. Every learner is then evaluated on the same start states. Seed-major, so
a grid stopped early still covers the whole map; the results are rewritten after every expectile.
Run from the repository root, with one torch thread::

    python tools/sensitivity_grid.py --results data/results

writes ``<results>/pendulum-mr-sensitivity.csv`` (one row per learner and seed: ``policy``,
``expectile``, ``beta``, ``seed``, ``steps``, ``score_mean``, ``score_std`` and the expectile row's
``wall_s``; BC rows have no expectile or beta) and ``<results>/pendulum-mr-sensitivity.json``
(per seed: the command, commit, hardware, expectiles and wall time). Rows of other seeds already in
the csv are kept, so seeds can be added one run at a time (``--seeds 2 --taus 0.7 0.5 0.9``).
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core import losses
from iql_tutorial.core.update import ACTION_CLIP, cosine_lr
from iql_tutorial.data.loader import load_dataset
from iql_tutorial.runs.evaluation import evaluate
from iql_tutorial.runs.sweep import code_commit, hardware
from iql_tutorial.utils import atomic_write_text

DATASET = "iqlbook/pendulum/medium-replay-v0"
TAUS = (0.5, 0.7, 0.9)
BETAS = (1.0, 3.0, 10.0)
NAME = "pendulum-mr-sensitivity"
EVAL_SEED = 777
MODE = "eager"  # compiling costs more than it saves at this size, on a busy CPU


class ExtraActor:
    """One more AWR actor with its own beta, trained on an IQLAgent's target critics and value."""

    def __init__(self, agent: IQLAgent, beta: float) -> None:
        self.beta, self.cfg, self.device = beta, agent.config, agent.device
        self.actor = copy.deepcopy(agent.actor)
        self.opt = torch.optim.Adam(self.actor.parameters(), lr=self.cfg.actor_lr)

    def step(self, obs: torch.Tensor, act: torch.Tensor, q_hat: torch.Tensor, v: torch.Tensor, t: int) -> None:
        self.opt.param_groups[0]["lr"] = float(cosine_lr(self.cfg.actor_lr, t, self.cfg.total_steps))
        w = losses.awr_weights(losses.advantage(q_hat, v), self.beta, self.cfg.max_weight)
        loss = losses.awr_loss(w, self.actor.log_prob(obs, act))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def act(self, obs: torch.Tensor, epsilon: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        self.actor.eval()
        with torch.no_grad():
            return self.actor.act(obs, epsilon, generator)


def train_sweep(
    dataset: Any, tau: float, betas: list[float], steps: int, hidden: tuple[int, ...], seed: int
) -> list[Any]:
    """One IQLAgent with betas[0] and one ExtraActor per other beta."""
    torch.manual_seed(seed)
    cfg = IQLConfig(expectile=tau, beta=betas[0], hidden_dims=hidden, total_steps=steps)
    agent = IQLAgent(dataset.obs_dim, dataset.act_dim, cfg, mode=MODE)
    extras = [ExtraActor(agent, b) for b in betas[1:]]
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        batch = dataset.transitions.sample(cfg.batch_size, gen)
        obs, act = batch["obs"], batch["actions"].clamp(-ACTION_CLIP, ACTION_CLIP)
        with torch.no_grad():
            q_hat, v = agent.target_q_min(obs, act), agent.value(obs)
        for extra in extras:
            extra.step(obs, act, q_hat, v, agent.num_updates)
        agent.update(batch)
    return [agent, *extras]


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--results", default="runs/sweeps", help="folder of the csv and json")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--taus", type=float, nargs="+", default=list(TAUS), help="BC trains beside the first")
    p.add_argument("--steps", type=int, default=3_000)
    p.add_argument("--hidden", type=int, default=256, help="units in each of the two hidden layers")
    p.add_argument("--eval-episodes", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(DATASET, reward_norm="locomotion")
    hidden = (args.hidden, args.hidden)
    csv, meta_path = results / f"{NAME}.csv", results / f"{NAME}.json"
    # rows and records of other seeds (or other expectiles of these seeds) are kept
    old = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {"seeds": {}}
    meta |= {
        "about": (
            f"IQL on {DATASET} (reward_norm locomotion) for every expectile in {list(TAUS)} and inverse "
            f"temperature in {list(BETAS)}, and behaviour cloning (an extra actor with beta 0), {args.steps} "
            f"steps, hidden layers {list(hidden)}, batch 256, evaluated on {args.eval_episodes} episodes "
            f"from the start states of seed {EVAL_SEED}; one value-critic training per expectile (chapter 7)"
        ),
    }
    command = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "commit": code_commit(),
        "hardware": hardware(torch.device("cpu")),
    }
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        t_seed = time.perf_counter()
        for i, tau in enumerate(args.taus):
            t0 = time.perf_counter()
            betas = list(BETAS) + ([0.0] if i == 0 else [])
            learners = train_sweep(dataset, tau, betas, args.steps, hidden, seed)
            wall = time.perf_counter() - t0
            for beta, learner in zip(betas, learners, strict=True):
                e = evaluate(learner, dataset, args.eval_episodes, seed=EVAL_SEED)
                bc = beta == 0.0
                rows.append(
                    {
                        "policy": "BC" if bc else "IQL",
                        "expectile": None if bc else tau,
                        "beta": None if bc else beta,
                        "seed": seed,
                        "steps": args.steps,
                        "score_mean": e["score_mean"],
                        "score_std": e["score_std"],
                        "wall_s": round(wall, 1),
                    }
                )
            new = pd.DataFrame(rows)
            keep = (
                old[~old.set_index(["seed", "expectile"]).index.isin(new.set_index(["seed", "expectile"]).index)]
                if len(old)
                else old
            )
            atomic_write_text(csv, pd.concat([keep, new]).sort_values(["seed"], kind="stable").to_csv(index=False))
            print(f"seed {seed} tau {tau}: {wall:.0f} s", flush=True)
        meta["seeds"][str(seed)] = {
            **command,
            "expectiles": args.taus,
            "wall_s": round(time.perf_counter() - t_seed, 1),
        }
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
