"""Choosing the behaviour policies of a SAC run and the reference scores of its environment.

After ``python -m iql_tutorial sac`` has written snapshots (``snapshots/step_N.pt``) to
``data/behaviour/<env>/``, :func:`select_behaviour` does what D4RL did by hand:

- ``ref_min_score``: the mean return of the uniform random policy (100 episodes);
- ``expert``: the snapshot with the best evaluation return; ``ref_max_score`` is its mean
  return with the mean action (its deterministic policy), so 100 = our best policy (a real
  expert on Pendulum; on MuJoCo only the best of a short CPU run: ``best_is_expert`` false);
- ``medium``: the snapshot whose *sampled* policy (the one that collects data) scores closest to
  ``medium_fraction`` (default 0.4) of the way from random to expert;
- ``medium-replay``: every transition of the run up to the medium snapshot (read from the
  training checkpoint in ``data/cache/behaviour/<env>/``).

The choice is written to ``data/behaviour/<env>/behaviour.json``; the chosen actors are copied
to ``medium.pt``/``expert.pt`` (with their ``.json``), the files the dataset recipes read.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from iql_tutorial.data.loader import REPO_DATA_DIR
from iql_tutorial.datasets.rollouts import mean_return, sac_policy, uniform_policy
from iql_tutorial.utils import atomic_write_text

BEHAVIOUR_DIR = REPO_DATA_DIR / "behaviour"
CACHE_DIR = REPO_DATA_DIR / "cache" / "behaviour"


def behaviour_dir(env_key: str) -> Path:
    return BEHAVIOUR_DIR / env_key


def read_behaviour(env_key: str) -> dict[str, Any]:
    """``data/behaviour/<env>/behaviour.json``; a clear error when the policies were not selected."""
    path = behaviour_dir(env_key) / "behaviour.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: train the behaviour policy (`python -m iql_tutorial sac --env ... --out "
            f"{behaviour_dir(env_key)}`) and select it (`python -m iql_tutorial data select {env_key}`)."
        )
    return json.loads(path.read_text())


def snapshot_table(env_key: str) -> list[dict[str, Any]]:
    """Metadata of every snapshot of the run, sorted by environment step."""
    snaps = sorted((behaviour_dir(env_key) / "snapshots").glob("step_*.json"))
    return [{**json.loads(p.read_text()), "path": str(p.with_suffix(""))} for p in snaps]


def load_replay(env_key: str) -> dict[str, np.ndarray]:
    """The training run's transitions: ``replay.npz`` if the run finished, else its last checkpoint."""
    d = CACHE_DIR / env_key
    if (d / "replay.npz").exists():
        with np.load(d / "replay.npz") as z:
            return {k: z[k] for k in z.files}
    if (d / "sac_checkpoint.pt").exists():
        from iql_tutorial.datasets.sac import load_checkpoint_file, tensors_to_replay

        return tensors_to_replay(load_checkpoint_file(d / "sac_checkpoint.pt")["buffer"])
    raise FileNotFoundError(
        f"No replay buffer of the {env_key} training run in {d}: the medium-replay dataset is the training "
        "run's own replay buffer, so it can only be rebuilt where that run happened (or by training again)."
    )


def select_behaviour(
    env_key: str,
    env_id: str,
    medium_fraction: float = 0.4,
    ref_episodes: int = 100,
    expert_episodes: int | None = None,
    candidate_episodes: int = 20,
    n_candidates: int = 4,
    max_step: int | None = None,
    seed: int = 12345,
    best_is_expert: bool = True,
) -> dict[str, Any]:
    """Pick the expert and medium snapshots, compute reference scores, write ``behaviour.json``.

    ``ref_episodes`` random episodes give ref_min, ``expert_episodes`` (default: as many) ref_max.
    Only snapshots up to ``max_step`` whose step the replay buffer covers are considered for medium.
    """
    snaps = [s for s in snapshot_table(env_key) if max_step is None or s["env_steps"] <= max_step]
    if not snaps:
        raise FileNotFoundError(f"No snapshots in {behaviour_dir(env_key) / 'snapshots'}: train the policy first.")
    replay_size = len(load_replay(env_key)["rewards"])
    ref_min, ref_min_std = mean_return(env_id, lambda sp: uniform_policy(sp, seed), seed, ref_episodes, "random policy")
    expert = max(snaps, key=lambda s: s["eval_return_mean"])
    n_expert = expert_episodes or ref_episodes
    ref_max, ref_max_std = mean_return(
        env_id,
        lambda sp: sac_policy(expert["path"], sp, seed, deterministic=True),
        seed,
        ref_episodes,
        "expert (mean action)",
    )
    exp_sampled = mean_return(
        env_id, lambda sp: sac_policy(expert["path"], sp, seed), seed, candidate_episodes, "expert (sampled)"
    )
    target = ref_min + medium_fraction * (ref_max - ref_min)
    pool = [s for s in snaps if s["env_steps"] <= replay_size and s["env_steps"] < expert["env_steps"]]
    pool = sorted(pool, key=lambda s: abs(s["eval_return_mean"] - target))[:n_candidates]
    scored = []
    for s in pool:
        m, sd = mean_return(
            env_id,
            functools.partial(lambda sp, path: sac_policy(path, sp, seed), path=s["path"]),
            seed,
            candidate_episodes,
            f"candidate {s['env_steps']}",
        )
        scored.append((abs(m - target), s, m, sd))
    _, medium, med_mean, med_std = min(scored, key=lambda t: t[0])

    def norm(x: float) -> float:
        return 100.0 * (x - ref_min) / (ref_max - ref_min)

    d = behaviour_dir(env_key)
    for name, snap in (("medium", medium), ("expert", expert)):
        for ext in (".pt", ".json"):
            shutil.copyfile(snap["path"] + ext, d / f"{name}{ext}")
    info = {
        "env_id": env_id,
        "ref_min_score": ref_min,
        "ref_min_std": ref_min_std,
        "ref_min_episodes": ref_episodes,
        "ref_min_policy": "uniform random actions",
        "ref_max_score": ref_max,
        "ref_max_std": ref_max_std,
        "ref_max_episodes": n_expert,
        "ref_max_policy": f"SAC snapshot at {expert['env_steps']} env steps, mean action",
        "best_is_expert": best_is_expert,
        "expert": {"env_steps": expert["env_steps"], "sampled_return_mean": exp_sampled[0],
                   "sampled_return_std": exp_sampled[1], "normalized": norm(exp_sampled[0])},
        "medium": {"env_steps": medium["env_steps"], "sampled_return_mean": med_mean, "sampled_return_std": med_std,
                   "normalized": norm(med_mean), "target_fraction": medium_fraction},
        "medium_replay_steps": int(medium["env_steps"]),
        "training": {"env_steps": int(max(s["env_steps"] for s in snaps)), "hidden": expert["hidden"],
                     "cpu_seconds": _cpu_seconds(d, snaps), "seed": expert.get("seed"),
                     "sac_config": expert.get("sac_config")},
    }  # fmt: skip
    atomic_write_text(d / "behaviour.json", json.dumps(info, indent=2) + "\n")
    return info


def _cpu_seconds(d: Path, snaps: list[dict[str, Any]]) -> float:
    """CPU seconds of the training run (the last snapshot's count, or the run's final count)."""
    f = d / "cpu_seconds.txt"
    last = float(max(s.get("cpu_seconds", 0.0) for s in snaps))
    return max(last, float(f.read_text())) if f.exists() else last
