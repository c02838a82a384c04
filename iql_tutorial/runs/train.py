"""Offline training of IQL (or the behaviour-cloning baseline) on a Minari dataset.

Command line::

    python -m iql_tutorial train --dataset iqlbook/pendulum/medium-replay-v0 --steps 20000

Python::

    from iql_tutorial.runs.train import TrainConfig, train
    result = train(TrainConfig(dataset="iqlbook/pendulum/medium-replay-v0", steps=20_000))

A run folder holds ``run.json`` (the configuration), ``checkpoint.pt`` (written atomically),
``train_log.csv`` (losses every ``log_every`` steps), ``eval_log.csv`` (returns and
normalized scores every ``eval_every`` steps) and ``diag_log.csv`` (offline diagnostics on
held-out episodes every ``eval_every`` steps: see :mod:`iql_tutorial.runs.diagnostics`).
``val_fraction`` of the episodes (whole episodes, chosen by the seed) are held out of training for
those diagnostics. A dataset that names no environment (imported without ``--env``) is trained
all the same, with diagnostics and no evaluation. ``resume=True`` continues a killed run; on the
CPU the result is bit-identical to a run that was never interrupted.

A run knows its data: ``run.json`` records the dataset's ``data_fingerprint`` (its counts and a
hash of its arrays), and a resume (or a fine-tuning) on data that changed since (``data import
--force`` of other arrays, a rebuild) is refused in one line naming both fingerprints. A run folder
written before fingerprints were recorded resumes with a note that its data cannot be checked.
Training stops with one line at the first non-finite loss (read where the loop logs or saves, so
no host sync is added), keeping the last checkpoint written before it; networks and a batch that
cannot fit in the device's memory are refused before any is made, and nothing is left behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_tutorial.core.agent import IQLAgent
from iql_tutorial.core.config import POLICY_MODES, PRIORITIES, UPDATE_ORDERS, IQLConfig
from iql_tutorial.core.runner import MODES
from iql_tutorial.data import OfflineDataset, Transitions, load_dataset
from iql_tutorial.data.loader import check_dataset_id, describe_fingerprint, reward_dim_message
from iql_tutorial.runs.cli import add_fields, given
from iql_tutorial.runs.csvlog import CsvLog
from iql_tutorial.runs.diagnostics import DIAG_COLUMNS, offline_diagnostics, split_episodes
from iql_tutorial.runs.evaluation import evaluate
from iql_tutorial.runs.folder import Interrupted, RunFolder, run_command
from iql_tutorial.utils import (
    first_line,
    live_status,
    progress_bar,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from iql_tutorial.utils.threads import decide_threads, reexec_with

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
REWARD_NORMS = ("none", "locomotion", "shift")
EVAL_COLUMNS = ["step", "return_mean", "return_std", "score_mean", "score_std", "wall_s"]


GPU_STEPS = 1_000_000  # the paper's budget
CPU_STEPS = 100_000  # 10% of it: about 10 minutes of the compiled step on one core of a 2-core VM


def default_steps(device: str | torch.device = "auto") -> int:
    """The one place that decides the default budget: the paper's 1,000,000 gradient steps on a
    GPU, ``CPU_STEPS`` on a CPU. The trainer, the sweep and the Makefile all use it."""
    return GPU_STEPS if resolve_device(str(device)).type == "cuda" else CPU_STEPS


def preset_for(dataset_id: str) -> dict[str, Any]:
    """The paper's per-domain settings (Appendix B): sparse navigation (mazes) uses
    expectile 0.9, beta 10 and rewards shifted by -1; everything else the locomotion ones."""
    if "maze" in dataset_id.lower():
        return {"expectile": 0.9, "beta": 10.0, "reward_norm": "shift"}
    return {"expectile": 0.7, "beta": 3.0, "reward_norm": "locomotion"}


def preset_config(dataset_id: str, **overrides: Any) -> IQLConfig:
    """The dataset's preset ``IQLConfig`` (``preset_for``), with ``overrides`` on top."""
    p = preset_for(dataset_id)
    return IQLConfig(**{"expectile": p["expectile"], "beta": p["beta"], **overrides})


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        dataset: Minari dataset id (python -m iql_tutorial data list).
        steps: gradient steps; None: 1,000,000 on a GPU (the paper), 100,000 on a CPU (``default_steps``).
        device: auto, cpu or cuda[:N].
        mode: how each update runs: auto (the fastest here), eager, compile or cuda-graph.
        seed: seeds the networks, the sampler and the evaluation episodes.
        out: run folder (default runs/<dataset, every / as _>-<policy>-seed<seed>, e.g.
            runs/iqlbook_pendulum_medium-replay-v0-awr-seed0; an existing folder of the older name
            with -iql- for awr is used as it is).
        resume: continue the run in out (bit-identical on a CPU).
        reward_norm: none, locomotion or shift; None: the dataset's preset.
        eval_every: evaluate every this many steps (and at the last step).
        eval_episodes: deterministic evaluation episodes (0 disables evaluation).
        log_every: write a train_log.csv row every this many steps.
        checkpoint_every: write checkpoint.pt every this many steps (and at the last step).
        val_fraction: fraction of the dataset's episodes (whole episodes, chosen by the seed) held
            out of training for the offline diagnostics in diag_log.csv, written every eval_every
            steps; 0 trains on every episode and writes no diagnostics.
        iql: the learner's hyperparameters; None: the dataset's preset (``preset_config``: mazes
            use expectile 0.9 and beta 10). An explicit config is used as given. Its
            ``total_steps`` (the cosine schedule's length) is always set to ``steps``.
    """

    dataset: str
    steps: int | None = None
    device: str = "auto"
    mode: str = "auto"
    seed: int = 0
    out: str | None = None
    resume: bool = False
    reward_norm: str | None = None
    eval_every: int = 5_000
    eval_episodes: int = 10
    log_every: int = 1_000
    checkpoint_every: int = 10_000
    val_fraction: float = 0.05
    iql: IQLConfig | None = None

    def __post_init__(self) -> None:
        if self.iql is not None and not isinstance(self.iql, IQLConfig):
            raise TypeError(
                f"TrainConfig.iql must be an IQLConfig (or None for the dataset's preset), not "
                f"{type(self.iql).__name__}: write iql=IQLConfig(...) or iql=preset_config(dataset, ...)."
            )
        if self.steps is None:
            self.steps = default_steps(self.device)
        for name in ("steps", "eval_every", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be a positive integer.")
        if self.eval_episodes < 0:
            raise ValueError(f"TrainConfig.eval_episodes={self.eval_episodes} must be >= 0 (0 disables evaluation).")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(
                f"TrainConfig.val_fraction={self.val_fraction} must lie in [0, 1): the fraction of episodes held "
                "out for the offline diagnostics (0 disables them)."
            )
        if self.reward_norm is not None and self.reward_norm not in REWARD_NORMS:
            raise ValueError(f"TrainConfig.reward_norm={self.reward_norm!r}: choose one of {REWARD_NORMS} or None.")
        if self.mode not in MODES:
            raise ValueError(f"TrainConfig.mode={self.mode!r}: choose one of {MODES}.")
        if self.out is None:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.dataset)
            policy = self.iql.policy if self.iql is not None else "awr"
            out = Path("runs") / f"{name}-{policy}-seed{self.seed}"
            older = Path("runs") / f"{name}-iql-seed{self.seed}"  # the name awr's folders had (read, not made)
            self.out = str(older if policy == "awr" and older.exists() and not out.exists() else out)

    def iql_config(self) -> IQLConfig:
        """The learner's config: ``iql`` (or the preset) with ``total_steps = steps``."""
        base = self.iql if self.iql is not None else preset_config(self.dataset)
        assert self.steps is not None  # __post_init__ resolved it
        return dataclasses.replace(base, total_steps=self.steps)

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
            "val_fraction": self.val_fraction,
        }


@dataclass
class TrainResult:
    out: Path
    agent: IQLAgent
    dataset: OfflineDataset
    train_log: pd.DataFrame
    eval_log: pd.DataFrame
    wall_s: float
    diag_log: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=DIAG_COLUMNS))
    validation: Transitions | None = None  # the held-out episodes (None: val_fraction = 0)


def normalize_previous(previous: dict[str, Any]) -> dict[str, Any]:
    """An older run.json brought up to date, so that resuming it compares like with like."""
    if isinstance(previous.get("iql"), dict):  # fields added since that run keep their defaults
        try:
            previous["iql"] = IQLConfig.from_dict(previous["iql"]).to_dict()
        except (TypeError, ValueError):
            pass
    previous.setdefault("val_fraction", 0.0)  # runs from before the held-out split trained on everything
    previous.pop("data_fingerprint", None)  # what the run trained on, not a setting: check_data compares it
    return previous


def check_data(run: dict[str, Any], folder: Path, dataset: OfflineDataset, action: str = "resume") -> dict[str, Any]:
    """The dataset's fingerprint (``data_fingerprint``); a one-line ``ValueError`` if the run in
    ``folder`` (its ``run.json``: ``run``) recorded another one: its dataset changed since (``data
    import --force`` of other arrays, a rebuild). A run.json from before fingerprints were recorded
    is accepted, with a note that the data cannot be checked."""
    now = dataset.data_fingerprint()
    recorded = run.get("data_fingerprint")
    if recorded is None:
        print(
            f"note: {folder / 'run.json'} records no fingerprint of its dataset (written before runs recorded "
            f"one), so this {action} cannot check that dataset {dataset.dataset_id} is the one it trained on.",
            file=sys.stderr,
        )
    elif recorded != now:
        raise ValueError(
            f"Cannot {action} {folder}: dataset {dataset.dataset_id} is not the data this run trained on "
            f"(run.json: {describe_fingerprint(recorded)}; now: {describe_fingerprint(now)}): it was replaced or "
            "rebuilt since. Train on it in a new run (another --out), or restore the data the run trained on; "
            "nothing was trained or overwritten."
        )
    return now


def _describe(previous: dict[str, Any]) -> str:
    return f" (dataset {previous.get('dataset')}, seed {previous.get('seed')})"


COMPILE_NOTE = (
    "compiling the IQL update ({mode}: about {seconds} s, once per process); the progress bar starts counting after it"
)
COMPILE_SECONDS = {"compile": 30, "cuda-graph": 60}  # CPU: the 20-40 s seen on a 2-core VM; GPU: an estimate


def compile_note(mode: str) -> str | None:
    """The line said before the first (compiling) update, or None for the eager step."""
    if mode not in COMPILE_SECONDS:
        return None
    return COMPILE_NOTE.format(mode=mode, seconds=COMPILE_SECONDS[mode])


def train(cfg: TrainConfig, dataset: OfflineDataset | None = None, progress: bool = True) -> TrainResult:
    """Train per ``cfg`` and return the agent with its logs. See the module docstring.

    The run folder is locked for as long as this writes into it (``folder.RunFolder``): a second
    writer is refused. Ctrl-C raises ``folder.Interrupted`` (the step reached and the last
    checkpoint's); a failure before the run started leaves no folder behind."""
    assert cfg.steps is not None and cfg.out is not None  # __post_init__ resolved both
    folder = RunFolder.open(cfg.out)
    ok = discard = False
    try:
        result = _train(cfg, folder, dataset, progress)
        ok = True
        return result
    except KeyboardInterrupt:  # before the loop (loading, compiling): the loop raises its own
        raise Interrupted(folder.path, folder.progress_step, folder.saved_step) from None
    except (torch.OutOfMemoryError, RuntimeError) as e:  # what check_memory's estimate let through
        if not is_out_of_memory(e):
            raise
        discard = folder.saved_step is None  # nothing to resume: leave no folder behind
        kept = "" if folder.saved_step is None else f"; the checkpoint of step {folder.saved_step:,} is kept"
        raise MemoryError(
            f"out of memory at step {folder.progress_step:,} ({first_line(e, 160)}): hidden_dims "
            f"{list(cfg.iql_config().hidden_dims)} with batch_size {cfg.iql_config().batch_size:,} need more than "
            f"this device has; lower --hidden-dims or --batch-size{kept}."
        ) from None
    finally:
        folder.close(ok, discard)


def _train(cfg: TrainConfig, folder: RunFolder, dataset: OfflineDataset | None, progress: bool) -> TrainResult:
    assert cfg.steps is not None
    out = folder.path
    iql = cfg.iql_config()
    ckpt = folder.resume_or_start(cfg.identity(), cfg.resume, normalize_previous, _describe, progress)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    if dataset is None:
        dataset = load_dataset(
            cfg.dataset, device=device, reward_norm=cfg.resolved_reward_norm(), reward_dim=iql.reward_dim
        )
    elif dataset.transitions.device != device:
        dataset = dataclasses.replace(dataset, transitions=dataset.transitions.to(device))
    if dataset.transitions.reward_dim != iql.reward_dim:
        raise ValueError(reward_dim_message(cfg.dataset, dataset.transitions.reward_dim, iql.reward_dim))
    dataset.transitions.check_finite(f"Dataset {cfg.dataset}")
    fingerprint = check_data(folder.recorded, out, dataset) if ckpt is not None else dataset.data_fingerprint()
    train_data, val_data = split_episodes(dataset.transitions, cfg.val_fraction, cfg.seed)  # own RNG stream
    evaluating = cfg.eval_episodes > 0 and dataset.has_env
    if cfg.eval_episodes > 0 and not dataset.has_env:  # said once, whatever progress is
        held = (
            f"offline diagnostics on {int(val_data.episode_ids.unique().numel())} held-out episode(s) go to "
            f"{out / 'diag_log.csv'}"
            if val_data is not None
            else "val_fraction=0 (or a single episode) holds nothing out, so only train_log.csv is written"
        )
        print(f"note: dataset {cfg.dataset} names no environment, so there is no online evaluation; {held}.",
              file=sys.stderr)  # fmt: skip
    plan = decide_threads(device)  # the thread plan, decided visibly (utils.threads; IQL_THREADS overrides)
    notes = plan.apply()
    check_memory(dataset.obs_dim, dataset.act_dim, iql, device)  # before any network is made
    agent = IQLAgent(dataset.obs_dim, dataset.act_dim, iql, device, mode=cfg.mode)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if progress and live_status():
        print(plan.describe(), file=sys.stderr)
    if progress and agent.mode_note:
        print(f"note: {agent.mode_note}", file=sys.stderr)
    sampler = torch.Generator(device=device)
    sampler.manual_seed(cfg.seed)
    train_log, eval_log = CsvLog(out / "train_log.csv", TRAIN_COLUMNS), CsvLog(out / "eval_log.csv", EVAL_COLUMNS)
    diag_log = CsvLog(out / "diag_log.csv", DIAG_COLUMNS)
    start, wall_offset = 0, 0.0
    if ckpt is not None:
        agent.load_full_state(ckpt["agent"])
        sampler.set_state(ckpt["sampler"])
        set_rng_state(ckpt["rng"])
        start, wall_offset = int(ckpt["step"]), float(ckpt.get("wall_s", 0.0))
        for log in (train_log, eval_log, diag_log):
            log.truncate_after(start)
    else:
        folder.start({**cfg.identity(), "data_fingerprint": fingerprint}, [train_log, eval_log, diag_log])
    # how each session of this run used the CPU (not its identity)
    folder.append_text("threads.txt", f"step {start}: mode {agent.mode}; {plan.describe()}\n")
    compiling = compile_note(agent.mode) if start < cfg.steps else None
    if progress and compiling and live_status():
        print(compiling, file=sys.stderr)

    t0 = time.perf_counter() - wall_offset
    bar = progress_bar(cfg.steps, start, f"{iql.policy} {cfg.dataset}", "step", progress)
    s = start
    try:
        _loop(cfg, folder, agent, train_data, sampler, dataset, val_data, evaluating, bar, (train_log, eval_log, diag_log),
              t0, s)  # fmt: skip
    except KeyboardInterrupt:
        raise Interrupted(out, folder.progress_step, folder.saved_step) from None
    finally:
        # the bar ends its line before any message that follows (an error's one line included)
        bar.close()

    return TrainResult(out, agent, dataset, train_log.frame(), eval_log.frame(), time.perf_counter() - t0,
                       diag_log.frame(), val_data)  # fmt: skip


def _loop(
    cfg: TrainConfig,
    folder: RunFolder,
    agent: IQLAgent,
    train_data: Transitions,
    sampler: torch.Generator,
    dataset: OfflineDataset,
    val_data: Transitions | None,
    evaluating: bool,
    bar: Any,
    logs: tuple[CsvLog, CsvLog, CsvLog],
    t0: float,
    s: int,
) -> None:
    """The training loop from step ``s`` to ``cfg.steps``; ``folder.progress_step`` follows it."""
    assert cfg.steps is not None
    train_log, eval_log, diag_log = logs
    folder.progress_step = s
    while s < cfg.steps:
        # run up to the next log / evaluation / checkpoint in one call: no Python work per step
        s_next = min(
            cfg.steps, *((s // every + 1) * every for every in (cfg.log_every, cfg.eval_every, cfg.checkpoint_every))
        )
        metrics = agent.run_updates(train_data, s_next - s, sampler)
        bar.update(s_next - s)
        s = folder.progress_step = s_next
        if s % cfg.log_every == 0 or s % cfg.checkpoint_every == 0 or s == cfg.steps:  # read where logged or saved
            check_losses(metrics, s, folder)  # before a checkpoint could keep a diverged agent
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
        if val_data is not None and (s % cfg.eval_every == 0 or s == cfg.steps):  # host sync: logging only
            diag_log.append({**offline_diagnostics(agent, val_data), "step": s, "wall_s": time.perf_counter() - t0})
        if evaluating and (s % cfg.eval_every == 0 or s == cfg.steps):
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
            folder.save(state, s)


LOSSES = ("value_loss", "critic_loss", "actor_loss")


def is_out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in text or "not enough memory" in text


def available_memory(device: torch.device) -> int | None:
    """Bytes the device can still give (CUDA: free memory; CPU: MemAvailable); None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_needed(obs_dim: int, act_dim: int, iql: IQLConfig) -> tuple[int, int]:
    """A lower estimate, in bytes, of (the networks with their gradients, Adam's two moments and
    the target critics; one batch's activations forward and backward), in float32."""

    def mlp(inputs: int, outputs: int) -> int:
        sizes = [inputs, *iql.hidden_dims, outputs]
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    critic = mlp(obs_dim + act_dim, iql.reward_dim)
    params = mlp(obs_dim, iql.reward_dim) + iql.num_critics * critic + mlp(obs_dim, act_dim)
    weights = 4 * (4 * params + iql.num_critics * critic)  # parameter, gradient, 2 moments; targets
    nets = 2 + 2 * iql.num_critics  # value, actor, the critics and their targets
    activations = 4 * iql.batch_size * (2 * sum(iql.hidden_dims) * nets + 2 * obs_dim + act_dim + 4)
    return weights, activations


def check_memory(obs_dim: int, act_dim: int, iql: IQLConfig, device: torch.device) -> None:
    """A one-line ``MemoryError`` when the networks and one batch cannot fit on ``device``
    (``memory_needed`` against ``available_memory``), before anything is allocated."""
    weights, activations = memory_needed(obs_dim, act_dim, iql)
    free = available_memory(device)
    if free is None or weights + activations <= free:
        return
    raise MemoryError(
        f"out of memory: hidden_dims {list(iql.hidden_dims)} with batch_size {iql.batch_size:,} need about "
        f"{(weights + activations) / 1e9:,.1f} GB (networks with their optimizer state {weights / 1e9:,.1f} GB, one "
        f"batch {activations / 1e9:,.1f} GB) but {device} has {free / 1e9:,.1f} GB available; lower --hidden-dims "
        "or --batch-size. Nothing was written."
    )


def check_losses(metrics: dict[str, torch.Tensor], step: int, folder: RunFolder) -> None:
    """A one-line ``ValueError`` at the first non-finite loss read (the losses are read where the
    loop logs or saves, so the hot path gains no host sync); the last checkpoint, written before
    the losses diverged, is kept."""
    bad = {k: float(metrics[k]) for k in LOSSES if k in metrics and not math.isfinite(float(metrics[k]))}
    if not bad:
        return
    kept = (
        f"the last good checkpoint (step {folder.saved_step:,}) is kept in {folder.path}"
        if folder.saved_step is not None
        else f"no checkpoint was written before it ({folder.path} keeps run.json and the logs)"
    )
    losses = ", ".join(f"{k} {v}" for k, v in bad.items())
    raise ValueError(
        f"training diverged: {losses} at step {step:,}; {kept}. Likely causes: the dataset's scale (observations or "
        "rewards of huge magnitude: rescale them, or --reward-norm locomotion) or a learning rate too high "
        "(--actor-lr, --critic-lr, --value-lr)."
    )


def build_parser() -> argparse.ArgumentParser:
    """Every ``TrainConfig`` field and every ``IQLConfig`` field (except ``total_steps``, which is
    ``--steps``) as a flag; help texts and defaults come from the dataclasses."""
    p = argparse.ArgumentParser(prog="python -m iql_tutorial train", description=__doc__.split("\n\n")[0])
    add_fields(p, TrainConfig, skip=("iql",), required=("dataset",),
               choices={"mode": MODES, "reward_norm": REWARD_NORMS})  # fmt: skip
    g = p.add_argument_group("IQL hyperparameters (IQLConfig; unset ones come from the dataset's preset)")
    add_fields(g, IQLConfig, skip=("total_steps",),
               choices={"update_order": UPDATE_ORDERS, "policy": POLICY_MODES, "priority": PRIORITIES})  # fmt: skip
    return p


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    ns = build_parser().parse_args(argv)
    fields = given(ns, TrainConfig)
    return TrainConfig(**fields, iql=preset_config(fields["dataset"], **given(ns, IQLConfig)))


def done_table(result: TrainResult) -> str:
    """What ``main`` prints at the end: the folder, the time, and the last evaluation (or offline
    diagnostics) as a short table with units."""
    steps = int(result.train_log["step"].max()) if len(result.train_log) else 0
    lines = [f"done: {result.out} ({steps:,} steps, {result.wall_s:.0f} s)"]
    rows: list[tuple[str, str]] = []
    if len(result.eval_log):
        last = result.eval_log.iloc[-1]
        lines.append(f"last evaluation, step {int(last['step']):,}:")
        rows.append(("return (sum of rewards)", f"{last['return_mean']:.1f} +- {last['return_std']:.1f}"))
        if "score_mean" in last and pd.notna(last["score_mean"]):
            rows.append(("normalized score (0 random, 100 reference)",
                         f"{last['score_mean']:.1f} +- {last['score_std']:.1f}"))  # fmt: skip
    elif len(result.diag_log):
        last = result.diag_log.iloc[-1]
        lines.append(f"no evaluation (no environment); last offline diagnostics, step {int(last['step']):,}:")
        units = {
            "td_error": "TD error (squared, training reward units)",
            "expectile_loss": "expectile loss (squared reward units)",
            "log_likelihood": "held-out log-likelihood (nats/action)",
            "weighted_log_likelihood": "advantage-weighted log-likelihood (nats/action)",
            "weight_mean": "mean advantage weight",
        }
        rows += [(label, f"{last[k]:.4g}") for k, label in units.items() if k in last]
    else:
        lines.append("no evaluation and no offline diagnostics (eval_episodes 0 or no environment, val_fraction 0)")
    width = max((len(k) for k, _ in rows), default=0)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def _command(argv: list[str] | None) -> TrainResult:
    cfg = parse_args(argv)
    cfg.iql_config()  # range checks before any work
    check_dataset_id(cfg.dataset)
    reexec_with(decide_threads(resolve_device(cfg.device)))  # a spin count must be set before torch starts
    return train(cfg)


def main(argv: list[str] | None = None) -> int:
    return run_command(lambda: _command(argv), done_table)


if __name__ == "__main__":
    sys.exit(main())
