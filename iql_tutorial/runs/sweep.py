"""The results sweep: IQL and behaviour cloning, several datasets and seeds, resumable.

    python -m iql_tutorial sweep                         # the default sweep (see DEFAULT_DATASETS)
    python -m iql_tutorial sweep --datasets iqlbook/pendulum/medium-replay-v0 --seeds 0 1 2 --steps 20000

Every run has its own folder under ``--runs`` and is resumed if it was interrupted, and skipped
if it finished, so a long sweep survives interruptions without losing finished work. After each
run, the evaluation curves of every finished run are gathered into ``<results>/<name>.csv``
(one row per evaluation) and ``<results>/<name>.json`` records, per run, the exact command, the
commit, the hardware and the wall time. The final chapter reads those two files from
``data/results``; a sweep writes them to ``runs/sweeps`` unless told otherwise, so committing
results is an explicit step (``--results data/results``).

A sweep never mixes settings: before it trains anything it checks every dataset it names and
every run folder it would reuse; a folder whose ``run.json`` differs from the sweep's settings
for that run (steps, evaluation cadence, policy, seed, dataset, hyperparameters) stops the sweep
with one line naming the folder and the fields.

Budget: the trainer's ``default_steps`` (the paper's 1,000,000 gradient steps on a GPU, 100,000 on
a CPU); pass ``--steps`` to choose. Evaluation follows the paper: 10 episodes of the deterministic
policy. From Python: ``run_sweep(SweepConfig(datasets=[...], seeds=[0, 1, 2], steps=100_000))``.

The default sweep (medium-replay on the three MuJoCo tasks and the U-maze, 100,000 steps, IQL and
BC, 3 seeds) is committed as ``medium-replay-100k``, made with (1 torch thread per process)::

    python -m iql_tutorial sweep --name medium-replay-100k --steps 100000 --eval-every 10000 --results data/results

The earlier 10,000-step results under ``data/results`` were made with::

    python -m iql_tutorial sweep --name small-cpu --steps 10000 --eval-every 1000 --results data/results \
        --datasets iqlbook/pendulum/medium-replay-v0 iqlbook/pointmaze/umaze-v0 iqlbook/pendulum/medium-v0
    python -m iql_tutorial sweep --name mujoco-cpu --steps 10000 --eval-every 2000 --results data/results \
        --datasets iqlbook/halfcheetah/medium-replay-v0 iqlbook/halfcheetah/medium-v0
    python -m iql_tutorial sweep --name mujoco-hopper-cpu --steps 10000 --eval-every 2000 --results data/results \
        --datasets iqlbook/hopper/medium-replay-v0 iqlbook/hopper/medium-v0

and the fine-tuning curves with ``run_finetune_sweep(DATASETS, [0, 1, 2], 10000, 3000, name=NAME,
eval_every=1000)`` for Pendulum medium-replay and the U-maze (``small-cpu``) and for HalfCheetah
medium-replay (``mujoco-cpu``).

Sweeps that outgrow one machine: ``--ray`` runs each (dataset, policy, seed) as a Ray task
(``ray_sweep``; ``pip install 'iql_tutorial[ray]'``) asking for one GPU when the cluster has GPUs,
else one CPU. The resume rules and the two gathered files are those of the loop above: this
process (the driver) writes them as runs finish, in the same seed-major order. ``--ray`` alone
starts a Ray instance on this machine (all its cores or GPUs, one run each); on a cluster::

    ray start --head --port 6379                  # on one node, the head
    ray start --address HEAD:6379                 # on every other node (HEAD: the head's address)
    python -m iql_tutorial sweep --ray auto --runs /shared/iql/runs --steps 1000000 ...  # on the head

``--runs`` must be on a filesystem that every node mounts at the same path (NFS, Lustre, ...): a
task may run on any node and continues whatever run folder an earlier task left there (finished:
skipped; killed: resumed from its checkpoint; a task whose node dies is retried by Ray and resumes
the same way; ``--results`` is written by the driver only). Every node also needs this package (same commit) and its Python packages installed,
and the datasets: ``MINARI_DATASETS_PATH`` as the driver sees it is passed to the tasks, so point
it at a shared folder too. Pass ``--steps`` explicitly when the driver's machine has no GPU (the
default budget is chosen from the driver's device) and use ``--device auto`` or ``cuda`` (Ray
picks each task's GPU). Ray enables token authentication by default: every node and the driver
need the head's token (``ray get-auth-token`` on the head; copy ``~/.ray/auth_token`` or set
``RAY_AUTH_TOKEN``). Fine-tuning (``--finetune-steps``) still runs in the driver's process.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_tutorial.core.config import POLICY_MODES
from iql_tutorial.core.runner import MODES
from iql_tutorial.runs.cli import add_fields, field_docs, given
from iql_tutorial.runs.folder import ERRORS, Interrupted, one_line, read_run_json
from iql_tutorial.runs.train import TrainConfig, default_steps, preset_config, train
from iql_tutorial.utils import atomic_write_text, load_checkpoint, resolve_device, write_error

DEFAULT_DATASETS = [
    "iqlbook/hopper/medium-replay-v0",
    "iqlbook/halfcheetah/medium-replay-v0",
    "iqlbook/walker2d/medium-replay-v0",
    "iqlbook/pointmaze/umaze-v0",
]
RESULTS_DIR = "runs/sweeps"  # the default --results: outside the tracked source tree (/runs/ is ignored)
COMMITTED_RESULTS_DIR = Path(__file__).resolve().parents[2] / "data" / "results"  # what the book reads


@dataclass
class SweepConfig:
    """Every (dataset, policy, seed) run of a sweep, and where its results go.

    Attributes:
        datasets: Minari dataset ids.
        seeds: one run per seed.
        policies: awr (IQL) and/or bc (the behaviour-cloning baseline).
        steps: gradient steps per run; None: the trainer's default (``default_steps``).
        runs: folder of the run folders (one per dataset, policy and seed).
        results: folder of the gathered <name>.csv and <name>.json (the default is outside the
            source tree; --results data/results updates the committed files the book reads).
        name: file stem of the gathered results.
        device: auto, cpu or cuda[:N].
        mode: how each update runs: auto, eager, compile or cuda-graph.
        eval_every: evaluate every this many steps; None: steps / 10.
        eval_episodes: deterministic evaluation episodes per evaluation.
        finetune_steps: then fine-tune each IQL run online for this many environment steps (0: no).
        iql_overrides: IQLConfig fields set on top of each dataset's preset (e.g. small networks).
        val_fraction: episodes held out for offline diagnostics (train's --val-fraction); 0 (the
            default) trains on every episode, as the paper's protocol does.
        ray: run each run as a Ray task: local (what --ray alone means) starts a Ray instance on
            this machine, auto connects to the running cluster, HOST:6379 to that one; None: one
            run after another in this process. --runs must be a folder every node sees.
    """

    datasets: list[str] = field(default_factory=lambda: list(DEFAULT_DATASETS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    policies: list[str] = field(default_factory=lambda: ["awr", "bc"])
    steps: int | None = None
    runs: str = "runs/results"
    results: str = RESULTS_DIR
    name: str = "sweep"
    device: str = "auto"
    mode: str = "auto"
    eval_every: int | None = None
    eval_episodes: int = 10
    finetune_steps: int = 0
    iql_overrides: dict[str, Any] = field(default_factory=dict)
    val_fraction: float = 0.0
    ray: str | None = None

    def __post_init__(self) -> None:
        if self.steps is None:
            self.steps = default_steps(self.device)
        if self.eval_every is None:
            self.eval_every = max(self.steps // 10, 1)
        bad = [p for p in self.policies if p not in POLICY_MODES]
        if bad:
            raise ValueError(f"SweepConfig.policies: {bad} are not among {POLICY_MODES}.")
        for name in ("datasets", "seeds", "policies"):
            given = list(getattr(self, name))
            unique = list(dict.fromkeys(given))
            if not unique:
                raise ValueError(f"SweepConfig.{name} is empty: a sweep needs at least one.")
            if len(unique) < len(given):
                twice = sorted({str(v) for v in given if given.count(v) > 1})
                print(f"note: --{name} lists {', '.join(twice)} more than once; each runs once: "
                      f"{' '.join(str(v) for v in unique)}.", file=sys.stderr)  # fmt: skip
            setattr(self, name, unique)
        if (
            not isinstance(self.name, str)
            or not self.name.strip()
            or self.name.startswith(".")
            or any(sep in self.name for sep in ("/", "\\", os.sep))
        ):
            raise ValueError(
                f"--name {self.name!r} is not a plain file name: it names the gathered <name>.csv and <name>.json in "
                "--results, so it must be non-empty, without path separators and not start with a dot (e.g. "
                "--name medium-replay-100k); choose the folder with --results."
            )

    def run_config(self, dataset: str, policy: str, seed: int) -> TrainConfig:
        """The ``TrainConfig`` of one run of the sweep."""
        out = Path(self.runs) / run_tag(dataset, policy, seed)
        assert self.eval_every is not None
        return TrainConfig(
            dataset=dataset,
            steps=self.steps,
            device=self.device,
            mode=self.mode,
            seed=seed,
            out=str(out),
            resume=out.exists(),
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            log_every=max(self.eval_every // 5, 1),
            checkpoint_every=self.eval_every,
            iql=preset_config(dataset, policy=policy, **self.iql_overrides),
            val_fraction=self.val_fraction,
        )


def run_tag(dataset: str, policy: str, seed: int) -> str:
    return f"{dataset.replace('/', '_')}-{policy}-seed{seed}"


def commit_id() -> str:
    """The commit of the package's source tree, with ``+dirty`` when it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here,
                              timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", str(here.parent)], capture_output=True,
                               text=True, cwd=here, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) if head else "unknown"


@functools.cache
def code_commit() -> str:
    """``commit_id()`` read once per process, the first time a run or a sweep starts (before
    anything trains), so a long sweep does not record commits made while it was running."""
    return commit_id()


def __getattr__(name: str) -> str:
    """``CODE_COMMIT``: ``code_commit()``, no longer read at import."""
    if name == "CODE_COMMIT":
        return code_commit()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cores = os.cpu_count()
    return f"CPU {cpu_name()} ({cores} cores), {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def _finished(out: Path, steps: int) -> bool:
    ckpt = out / "checkpoint.pt"
    return ckpt.exists() and int(load_checkpoint(ckpt).get("step", 0)) >= steps


def sweep_run(
    cfg: SweepConfig, dataset: str, policy: str, seed: int, progress: bool = True
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """One run of the sweep, in whatever process runs it (this one, or a Ray worker): train it
    unless it finished (a killed run resumes from its checkpoint), then return its evaluation
    rows (``dataset``, ``policy`` and ``seed`` columns first) and, if it trained now, its
    ``<name>.json`` entry (command, commit, hardware, wall time); None if it had finished."""
    run = cfg.run_config(dataset, policy, seed)  # here, not in the driver: resume= sees the folder now
    out = Path(str(run.out))
    entry = None
    if not _finished(out, int(cfg.steps or 0)):
        commit = code_commit()
        t0 = time.perf_counter()
        result = train(run, progress=progress)
        cmd = (
            f"python -m iql_tutorial train --dataset {dataset} --steps {cfg.steps} --seed {seed} "
            f"--policy {policy} --eval-every {cfg.eval_every} --eval-episodes {cfg.eval_episodes} "
            f"--mode {result.agent.mode} --val-fraction {cfg.val_fraction} --out {shlex.quote(str(out))}"
            + "".join(f" --{k.replace('_', '-')} {_flag(v)}" for k, v in cfg.iql_overrides.items())
        )
        entry = {
            "command": cmd,
            "commit": commit,
            "hardware": hardware(resolve_device(cfg.device)),
            "wall_s_this_session": round(time.perf_counter() - t0, 1),
            "wall_s_total": round(result.wall_s, 1),
            "steps": cfg.steps,
        }
    log = pd.read_csv(out / "eval_log.csv")
    log.insert(0, "seed", seed)
    log.insert(0, "policy", policy)  # the identifier (awr, bc); figures show core.methods.LABELS
    log.insert(0, "dataset", dataset)
    return log, entry


def sweep_keys(cfg: SweepConfig) -> list[tuple[str, str, int]]:
    """The (dataset, policy, seed) of every run, seed-major: every (dataset, policy) gets its
    first seed before any gets its second, so a sweep stopped early still covers every cell of the
    table. The gathered CSV keeps this order whichever run finishes first."""
    return [(ds, policy, seed) for seed in cfg.seeds for ds in cfg.datasets for policy in cfg.policies]


def check_datasets(datasets: list[str]) -> None:
    """Every dataset of a sweep is a well-formed id and is here (or downloadable), checked before
    the first run trains: a one-line error names the first one that is not."""
    import minari

    from iql_tutorial.data.loader import (
        check_book_dataset_built,
        check_dataset_id,
        list_local_ids,
        unknown_dataset_error,
    )

    local = set(list_local_ids())
    for ds in datasets:
        check_dataset_id(ds)
        if ds in local:
            continue
        check_book_dataset_built(ds)
        try:
            minari.download_dataset(ds)
        except Exception as e:  # no network here, or an id Minari's server does not know
            raise unknown_dataset_error(ds, e) from None


def check_run_folders(cfg: SweepConfig, keys: list[tuple[str, str, int]]) -> None:
    """Every run folder the sweep would reuse holds that very run: its ``run.json`` matches the
    sweep's settings for it. Otherwise a one-line error names the folder and the fields that
    differ, before anything trains (a folder is never reused for other settings)."""
    from iql_tutorial.runs.folder import LOCK_NAME, differences, mismatch_message, read_run_json
    from iql_tutorial.runs.train import normalize_previous

    for key in keys:
        run = cfg.run_config(*key)
        out = Path(str(run.out))
        if not out.exists():
            continue
        if not out.is_dir():
            raise FileExistsError(
                f"{out} (a run of this sweep) is a file, not a folder; move it or choose another --runs."
            )
        if not (out / "run.json").exists():
            others = [p.name for p in out.iterdir() if p.name != LOCK_NAME]
            if others:
                raise FileExistsError(
                    f"{out} (a run of this sweep) is not empty and holds no run of this package; move it away or "
                    "choose another --runs."
                )
            continue
        diff = differences(normalize_previous(read_run_json(out / "run.json")), run.identity())
        if diff:
            raise ValueError(mismatch_message(out, diff, action="reuse", flag="--runs"))


def run_sweep(cfg: SweepConfig, progress: bool = True) -> pd.DataFrame:
    """Train every (dataset, policy, seed) and gather the evaluation curves; see module docstring.

    The runs go one after another in this process, or, with ``cfg.ray``, as Ray tasks
    (``ray_sweep``); either way this process writes ``<name>.csv`` and ``<name>.json`` after each
    finished run, in ``sweep_keys`` order, so both paths write the same files.

    Before any run trains, every dataset (``check_datasets``) and every run folder it would reuse
    (``check_run_folders``) is checked."""
    code_commit()  # the commit of the code this process runs, before anything trains
    keys = sweep_keys(cfg)
    check_datasets(cfg.datasets)
    check_run_folders(cfg, keys)
    results_dir = Path(cfg.results)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error("results into", results_dir, e) from None
    meta_path = results_dir / f"{cfg.name}.json"
    meta = read_run_json(meta_path) if meta_path.exists() else {"runs": {}}
    tags = [run_tag(*key) for key in keys]
    done: dict[tuple[str, str, int], pd.DataFrame] = {}

    def record(key: tuple[str, str, int], log: pd.DataFrame, entry: dict[str, Any] | None) -> None:
        done[key] = log
        if entry is not None:
            runs = {**meta["runs"], run_tag(*key): entry}
            meta["runs"] = {t: runs[t] for t in tags if t in runs} | {t: v for t, v in runs.items() if t not in tags}
            _write(meta_path, json.dumps(meta, indent=2))
        _write(results_dir / f"{cfg.name}.csv", pd.concat([done[k] for k in keys if k in done]).to_csv(index=False))

    if cfg.ray is None:
        for key in keys:
            record(key, *sweep_run(cfg, *key, progress=progress))
    else:
        from iql_tutorial.runs.ray_sweep import run_on_ray  # Ray is imported only here

        run_on_ray(cfg, keys, sweep_run, run_tag, record, progress=progress)
    return pd.concat([done[k] for k in keys], ignore_index=True)


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise write_error("results", path, e) from None


def _flag(v: Any) -> str:
    return " ".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)


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
    from iql_tutorial.runs.finetune import FinetuneConfig, finetune

    commit = code_commit()  # before anything trains
    results_dir, runs_dir = Path(results_dir), Path(runs_dir)
    meta_path = results_dir / f"{name}-finetune.json"
    meta = read_run_json(meta_path) if meta_path.exists() else {"runs": {}}
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
                    "command": f"python -m iql_tutorial finetune --offline-run {offline} --online-steps {online_steps} "
                    f"--seed {seed} --eval-every {eval_every} --eval-episodes {eval_episodes} --out {out}",
                    "commit": commit,
                    "hardware": hardware(torch.device("cpu")),
                    "wall_s_this_session": round(time.perf_counter() - t0, 1),
                }
                _write(meta_path, json.dumps(meta, indent=2))
            log = pd.read_csv(out / "eval_log.csv")
            log.insert(0, "seed", seed)
            log.insert(0, "dataset", ds)
            frames.append(log)
            _write(results_dir / f"{name}-finetune.csv", pd.concat(frames).to_csv(index=False))
    return pd.concat(frames, ignore_index=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation across seeds of the final normalized score."""
    last = frame.sort_values("step").groupby(["dataset", "policy", "seed"]).tail(1)
    col = "score_mean" if "score_mean" in last and last["score_mean"].notna().all() else "return_mean"
    return last.groupby(["dataset", "policy"])[col].agg(["mean", "std", "count"]).round(1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial sweep", description=__doc__.split("\n\n")[0])
    add_fields(p, SweepConfig, skip=("iql_overrides", "ray"), choices={"mode": MODES})
    # the one flag cli.add_fields cannot make: --ray alone (nargs="?") starts a local Ray instance
    p.add_argument("--ray", nargs="?", const="local", default=argparse.SUPPRESS, metavar="ADDRESS", dest="ray",
                   help=field_docs(SweepConfig)["ray"] + " (default: None)")  # fmt: skip
    cfg = None
    try:
        cfg = SweepConfig(**given(p.parse_args(argv), SweepConfig))
        frame = run_sweep(cfg)
        if cfg.finetune_steps > 0:
            online = run_finetune_sweep(
                cfg.datasets, cfg.seeds, int(cfg.steps or 0), cfg.finetune_steps, cfg.runs, cfg.results, cfg.name,
                eval_episodes=cfg.eval_episodes,
            )  # fmt: skip
            print(online.groupby(["dataset", "step"])["score_mean" if "score_mean" in online else "return_mean"].mean())
    except Interrupted as e:
        print(f"{e.out}: interrupted at step {e.step}; rerun the same command to resume the sweep (finished runs "
              "are kept, this one resumes from its last checkpoint).", file=sys.stderr)  # fmt: skip
        return 130
    except ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if cfg is None or cfg.ray is None:
            raise
        # a Ray task's error carries the worker's traceback: its last line is the cause
        cause = [line for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        print(f"error: a run failed on Ray ({cause[-1].strip()}); rerun the sweep to resume.", file=sys.stderr)
        return 2
    print(summary(frame).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
