"""The sweep's runs as Ray tasks (``SweepConfig.ray``, ``python -m iql_tutorial sweep --ray``).

Imported only when a sweep asks for Ray, so Ray stays an optional extra (``pip install
iql_tutorial[ray]``). Each (dataset, policy, seed) is one task running ``sweep.sweep_run``, the
same function the in-process loop calls (passed in by ``sweep.run_sweep``: this module does
not import the sweep), with declared resources: one GPU (and one CPU) when the
cluster has GPUs and the device is not ``cpu``, else one CPU (and one torch thread). The run
folders live under ``--runs``, which every node must see (a shared filesystem: NFS, Lustre, a
mounted bucket), so a task finds a run that an earlier task, on any node, finished (skipped) or
left half-done (resumed from its checkpoint). A task whose worker dies (a node lost, a kill) is
retried by Ray up to ``MAX_RETRIES`` times and resumes from the checkpoint it left; a task that
raises is not retried, the other runs go on, and the sweep raises at the end (rerun it to resume).

Each task holds its run folder's lock (``run.lock``, created with ``O_CREAT | O_EXCL``, which NFS
v3+ and other shared filesystems honour) while it trains, so two tasks, or two sweeps, never write
into one folder. A lock left by a worker killed on the same node is taken over; one left by a
node that died names that host and is refused (this node cannot tell whether its process still
runs): delete the ``run.lock`` it names, then rerun the sweep.
The driver gathers what the tasks return into ``<name>.csv`` and ``<name>.json``; see
``sweep.run_sweep``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import ray

Key = tuple[str, str, int]  # (dataset, policy, seed)
MAX_RETRIES = 3  # retries of a task whose worker died (not of one that raised)
CPUS_PER_RUN = 1


def _task(
    run: Callable[..., tuple[pd.DataFrame, dict[str, Any] | None]], cfg: Any, dataset: str, policy: str, seed: int
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    import torch

    torch.set_num_threads(CPUS_PER_RUN)  # the CPUs Ray gave this task, as the committed sweeps ran
    return run(cfg, dataset, policy, seed, progress=False)


def connect(address: str) -> bool:
    """Connect to ``address`` (``local``: a new instance on this machine) unless this process
    already has a Ray session, which is then used as it is. True if this call started it."""
    if ray.is_initialized():
        return False
    ray.init(address=address)
    return True


def resources(cfg: Any) -> dict[str, float]:
    """What one run asks Ray for: a GPU when the cluster has one and the device allows it."""
    if cfg.device.startswith("cuda:"):
        raise ValueError(f"--device {cfg.device} with --ray: Ray chooses each run's GPU; use --device cuda or auto.")
    gpus = ray.cluster_resources().get("GPU", 0) if cfg.device != "cpu" else 0
    if cfg.device == "cuda" and gpus < 1:
        raise ValueError("--device cuda with --ray, but the Ray cluster has no GPU; use --device auto or cpu.")
    return {"num_cpus": CPUS_PER_RUN, "num_gpus": 1 if gpus >= 1 else 0}


def run_on_ray(
    cfg: Any,
    keys: list[Key],
    run: Callable[..., tuple[pd.DataFrame, dict[str, Any] | None]],
    tag: Callable[[str, str, int], str],
    record: Callable[[Key, pd.DataFrame, dict[str, Any] | None], None],
    progress: bool = True,
) -> None:
    """Run ``run(cfg, *key, progress=False)`` (``sweep.sweep_run``) for every key as a Ray task
    and pass each result to ``record`` (in the driver) as it arrives; ``cfg`` is the sweep's
    ``SweepConfig``, ``tag(*key)`` (``sweep.run_tag``) names a task. Raises the first task's error
    after every other task has ended."""
    # workers do not share the driver's working directory: give them absolute paths
    cfg = dataclasses.replace(cfg, runs=str(Path(cfg.runs).resolve()))
    env = {}
    if os.environ.get("MINARI_DATASETS_PATH"):
        env["MINARI_DATASETS_PATH"] = str(Path(os.environ["MINARI_DATASETS_PATH"]).resolve())
    started = connect(cfg.ray or "local")
    try:
        task = ray.remote(_task)
        opts: dict[str, Any] = {**resources(cfg), "max_retries": MAX_RETRIES}
        if env:
            opts["runtime_env"] = {"env_vars": env}
        pending = {task.options(**opts, name=tag(*key)).remote(run, cfg, *key): key for key in keys}
        failed: list[tuple[Key, BaseException]] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ready[0])
            try:
                log, entry = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                failed.append((key, e))
                print(f"[ray] {tag(*key)} failed: {type(e).__name__}", file=sys.stderr)
                continue
            record(key, log, entry)
            if progress:
                state = "trained" if entry is not None else "already finished"
                print(f"[ray] {tag(*key)} {state} ({len(keys) - len(pending)}/{len(keys)})", file=sys.stderr)
        if failed:
            names = ", ".join(tag(*key) for key, _ in failed)
            print(f"[ray] {len(failed)} of {len(keys)} runs failed ({names}); rerun the sweep to resume them.",
                  file=sys.stderr)  # fmt: skip
            raise failed[0][1]
    finally:
        if started:
            ray.shutdown()
