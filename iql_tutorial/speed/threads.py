"""How the IQL step uses a CPU's threads: decided here, in the open, and overridable.

PLACEHOLDER DOCSTRING (rewritten once measured).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

ENV_VAR = "IQL_THREADS"
#: OpenMP (libgomp) reads these once, when PyTorch is imported; a plan never overrides yours.
OPENMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@dataclass(frozen=True)
class ThreadPlan:
    """What the IQL step's process does with its threads.

    Attributes:
        device: the step's device ("cpu", "cuda", ...).
        threads: intra-op threads (``torch.set_num_threads``) for the step; None: PyTorch's choice.
        spin_count: ``GOMP_SPINCOUNT`` for OpenMP, which must be in the environment before
            PyTorch is imported (``env``); None: leave OpenMP's own default.
        source: "auto" (``decide_threads``' choice) or the override it came from.
        reason: why, in a few words.
    """

    device: str
    threads: int | None = None
    spin_count: int | None = None
    source: str = "auto"
    reason: str = ""

    def env(self) -> dict[str, str]:
        """Environment entries this plan needs set before PyTorch is imported."""
        return {} if self.spin_count is None else {"GOMP_SPINCOUNT": str(self.spin_count)}

    def missing_env(self) -> dict[str, str]:
        """The entries of ``env`` this process's environment does not have."""
        return {k: v for k, v in self.env().items() if os.environ.get(k) != v}

    def describe(self) -> str:
        """One line for a run's log."""
        threads = "PyTorch's default threads" if self.threads is None else f"{self.threads} thread(s)"
        spin = "OpenMP's default waiting" if self.spin_count is None else f"GOMP_SPINCOUNT={self.spin_count}"
        why = f" ({self.reason})" if self.reason else ""
        return f"threads [{self.source}]: {self.device}: {threads}, {spin}{why}; override with {ENV_VAR}=..."

    def apply(self) -> list[str]:
        """Set what can be set in this process (the thread count); notes on what could not."""
        notes: list[str] = []
        missing = self.missing_env()
        if missing:
            what = " ".join(f"{k}={v}" for k, v in missing.items())
            notes.append(
                f"{what} is not in effect in this process (OpenMP reads it when PyTorch is imported): "
                f"start Python with it set, or use the command line (python -m iql_tutorial.train sets it)."
            )
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        return notes


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_spec(spec: str, device: str) -> ThreadPlan:
    """An ``IQL_THREADS`` value: ``torch`` (decide nothing: PyTorch's and OpenMP's defaults), or
    comma-separated ``threads=N`` (or just ``N``) and ``spin=N`` (``GOMP_SPINCOUNT``)."""
    spec = spec.strip()
    src = f"{ENV_VAR}={spec}"
    if spec in ("torch", "default", "none"):
        return ThreadPlan(device, None, None, src, "PyTorch's defaults")
    threads: int | None = None
    spin: int | None = None
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.rpartition("=")
        key = key or "threads"
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"{ENV_VAR}={spec!r}: {part!r} is not KEY=INTEGER") from None
        if key == "threads" and n >= 1:
            threads = n
        elif key == "spin" and n >= 0:
            spin = n
        else:
            raise ValueError(f"{ENV_VAR}={spec!r}: use 'torch', or threads=N (N >= 1) and spin=N (N >= 0)")
    return ThreadPlan(device, threads, spin, src, "as given")


def decide_threads(device: object = "cpu", environ: dict[str, str] | None = None) -> ThreadPlan:
    """The thread plan for an IQL step on ``device``. Imports nothing (call it before PyTorch)."""
    env = os.environ if environ is None else environ
    dev = str(device)
    if env.get(ENV_VAR, "auto").strip() not in ("", "auto"):
        return parse_spec(env[ENV_VAR], dev)
    if not dev.startswith("cpu"):
        return ThreadPlan(dev, None, None, "auto", "not a CPU: nothing to decide")
    return ThreadPlan(dev, None, None, "auto", "placeholder")


def reexec_with(plan: ThreadPlan) -> None:
    """Restart this very command with ``plan.env()`` in its environment, if something is missing
    (OpenMP reads it only when PyTorch is imported). Returns when nothing is missing."""
    missing = plan.missing_env()
    if not missing:
        return
    what = " ".join(f"{k}={v}" for k, v in missing.items())
    print(f"{plan.describe()}\nrestarting with {what} (OpenMP reads it at start-up)", file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **missing})
