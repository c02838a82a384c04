"""How the IQL step uses a CPU's threads: decided here, in the open, and overridable.

Nothing here runs on import: importing the package changes no setting of your process. The
trainer calls :func:`decide_threads` at start, applies the plan and prints ``describe()`` into the
run's log; a script of your own can do the same::

    plan = decide_threads("cpu")      # before or after importing torch
    for note in plan.apply():         # sets torch.set_num_threads when the plan fixes a count
        print(note)
    print(plan.describe())
    ...
    plan.adjust()                     # before each runner.run(n) (an adaptive plan only)

What it decides on a CPU, and why (measured on a 2-core VM, figures in the performance appendix):

- Two threads (PyTorch's default there) while the machine is otherwise idle: the compiled step is
  about 1.55x faster on two threads than on one.
- One thread fewer per core that *other* processes keep busy, looked at before each call of the
  runner (at most every 0.25 s, from /proc/stat less this process's own CPU time). A two-thread
  step whose second thread shares a core with a busy process waits for that thread at every
  parallel region, for up to a scheduler time slice each time: it ran at 2% of its idle rate,
  and so does a plain PyTorch update at PyTorch's defaults. One thread keeps ~95% of its rate.
  Inductor's ``cpp.dynamic_threads`` (set by ``default_inductor_options`` for such a plan) makes
  the compiled kernels follow the thread count at run time.
- One thread when OpenMP's threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``, or
  ``GOMP_SPINCOUNT`` <= 1000, set by you): waking a sleeping thread at every parallel region made
  two threads slower than one.
- OpenMP's spinning is left as it is: OpenMP reads ``GOMP_SPINCOUNT`` only when PyTorch is
  imported, and no bounded spin count measured beat the plan above (short ones lose the idle
  speed, long ones the robustness).

Override with ``IQL_THREADS`` (read by :func:`decide_threads`; see :func:`parse_spec`):
``IQL_THREADS=torch`` decides nothing (PyTorch's and OpenMP's defaults), ``IQL_THREADS=1`` fixes one
thread, ``IQL_THREADS=2,spin=3000`` two threads and ``GOMP_SPINCOUNT=3000`` (a plan with a spin count
needs it set before PyTorch is imported: :func:`reexec_with` restarts a command line with it).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

ENV_VAR = "IQL_THREADS"
#: ``adjust`` looks at the machine at most this often (seconds): /proc/stat counts in 10 ms ticks.
CHECK_INTERVAL = 0.25
#: other processes' load (in cores) above which the adaptive plan gives up a thread, and below
#: which it takes it back
BUSY, QUIET = 0.5, 0.3
#: OpenMP threads that spin at most this many iterations before sleeping count as sleeping threads
SLEEPING = 1000


def spin_count(environ: Mapping[str, str] | None = None) -> float:
    """How long (in spin iterations) OpenMP's idle threads spin before they sleep, as libgomp
    reads the environment: ``GOMP_SPINCOUNT``, else ``OMP_WAIT_POLICY`` (ACTIVE: 3e10,
    PASSIVE: 0), else 300,000."""
    env = os.environ if environ is None else environ
    value = env.get("GOMP_SPINCOUNT", "").strip().lower()
    if value in ("infinite", "infinity"):
        return float("inf")
    if value:
        try:
            return float(value)
        except ValueError:
            pass
    policy = env.get("OMP_WAIT_POLICY", "").strip().upper()
    return {"ACTIVE": 3e10, "PASSIVE": 0.0}.get(policy, 300_000.0)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def machine_busy() -> float | None:
    """CPU seconds all processes have used so far (user, system, irq, steal: /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / _clock_ticks()


def process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` (all its threads), from /proc/PID/stat; 0 where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / _clock_ticks()
    except (OSError, IndexError, ValueError):
        return 0.0


class OthersLoad:
    """The CPU use of *other* processes (in cores) between two looks: the machine's busy time
    (:func:`machine_busy`) less the CPU time ``own()`` counts (default: this process's).

    The adaptive thread plan looks before each call of the runner; the benchmark looks around each
    round, counting its contenders' and its busy process's CPU time as its own."""

    def __init__(self, own: Callable[[], float] | None = None) -> None:
        self.own = own or (lambda: time.process_time())
        self.start()

    def start(self) -> None:
        """Look now: the next :meth:`look` measures from here."""
        self.t, self.busy, self.mine = time.perf_counter(), machine_busy(), self.own()

    def look(self) -> float | None:
        """Other processes' load since the last look, which this one replaces; None where /proc/stat
        cannot be read (the last look is kept)."""
        now, busy, mine = time.perf_counter(), machine_busy(), self.own()
        if busy is None or self.busy is None:
            return None
        others = max(0.0, (busy - self.busy) - (mine - self.mine)) / max(now - self.t, 1e-9)
        self.t, self.busy, self.mine = now, busy, mine
        return others


@dataclass(frozen=True)
class ThreadPlan:
    """What the IQL step's process does with its threads.

    Attributes:
        device: the step's device ("cpu", "cuda", ...).
        threads: intra-op threads (``torch.set_num_threads``) on an otherwise idle machine;
            None: PyTorch's choice.
        adaptive: one thread fewer per core that other processes keep busy, checked by
            ``adjust`` before each call of the runner (needs Inductor's ``cpp.dynamic_threads``,
            which ``default_inductor_options`` sets for such a plan).
        spin_count: ``GOMP_SPINCOUNT`` for OpenMP, which must be in the environment before
            PyTorch is imported (``env``); None: leave OpenMP's own default.
        elementwise: "one": Inductor's elementwise kernels on one thread; "all": on every
            thread; None: ``default_inductor_options`` decides.
        source: "auto" (``decide_threads``' choice) or the override it came from.
        reason: why, in a few words.
    """

    device: str
    threads: int | None = None
    adaptive: bool = False
    spin_count: int | None = None
    elementwise: str | None = None
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
        if self.threads is None and not self.adaptive and self.spin_count is None and self.elementwise is None:
            what = "PyTorch's and OpenMP's defaults"
        else:
            n = self.threads or _torch_default_threads()
            what = f"{n} thread{'s' if n > 1 else ''}" + (" (PyTorch's default)" if self.threads is None else "")
            if self.adaptive:
                what += ", one fewer per core that other processes keep busy (looked at before each call)"
            if self.spin_count is not None:
                what += f", GOMP_SPINCOUNT={self.spin_count}"
            if self.elementwise is not None:
                what += f", elementwise kernels on {'one thread' if self.elementwise == 'one' else 'every thread'}"
        why = f": {self.reason}" if self.reason else ""
        return f"threads [{self.source}] on {self.device}: {what}{why}. Override with {ENV_VAR}=..."

    def apply(self) -> list[str]:
        """Set what can be set in this process (the thread count) and make this the process's
        plan (``applied_plan``); returns notes on what could not be set."""
        global _APPLIED
        notes: list[str] = []
        missing = self.missing_env()
        if missing:
            what = " ".join(f"{k}={v}" for k, v in missing.items())
            notes.append(
                f"{what} is not in effect in this process (OpenMP reads it when PyTorch is imported): "
                f"start Python with it set, or use the command line (python -m iql_tutorial train sets it)."
            )
        if self.device.startswith("cpu") and self.threads is not None and self.threads > cores():
            notes.append(
                f"{ENV_VAR} asks for {self.threads} threads but this process may use {cores()} core(s): threads that "
                f"share a core wait for each other (a step can run many times slower); use {ENV_VAR}={cores()} or fewer."
            )
        if self.device.startswith("cpu") and (self.threads is not None or self.adaptive):
            import torch

            if self.threads is not None:
                torch.set_num_threads(self.threads)
            _MONITOR.reset(full=torch.get_num_threads())  # the most an adaptive plan goes back to
        _APPLIED = self
        return notes

    def adjust(self) -> int | None:
        """For an adaptive plan: the thread count for the next updates, set if it changed (at
        most one look at /proc/stat per ``CHECK_INTERVAL``). Returns the count; None: not adaptive."""
        if not self.adaptive or not self.device.startswith("cpu"):
            return None
        return _MONITOR.adjust(self)


class _Monitor:
    """Other processes' CPU use since the last look, and the thread count chosen from it."""

    def __init__(self) -> None:
        self.reset()

    def reset(self, full: int | None = None) -> None:
        self.load = OthersLoad()
        self.full, self.current = full, full
        self.switches = 0

    def adjust(self, plan: ThreadPlan) -> int:
        import torch

        if self.full is None or self.current is None:  # adjust() without apply()
            self.full = self.current = plan.threads or torch.get_num_threads()
        full = self.full
        if time.perf_counter() - self.load.t < CHECK_INTERVAL:
            return self.current
        others = self.load.look()
        if others is None:
            return self.current
        if others >= BUSY:
            want = max(1, min(full, cores() - math.ceil(others - 0.2)))
        elif others < QUIET:
            want = full
        else:
            want = self.current
        if want != self.current:
            torch.set_num_threads(want)
            self.current = want
            self.switches += 1
        return self.current


def _torch_default_threads() -> int:
    """PyTorch's own default: OMP_NUM_THREADS if set, else the cores this process may use."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return cores()


_MONITOR = _Monitor()
_APPLIED: ThreadPlan | None = None


def applied_plan() -> ThreadPlan | None:
    """The plan ``ThreadPlan.apply`` last applied in this process (None: none was)."""
    return _APPLIED


def parse_spec(spec: str, device: str) -> ThreadPlan:
    """An ``IQL_THREADS`` value: ``auto`` (``decide_threads``), ``torch`` (decide nothing:
    PyTorch's and OpenMP's defaults), or comma-separated ``N`` / ``threads=N`` (a fixed thread
    count), ``adapt`` (one thread fewer per busy core), ``spin=N`` (``GOMP_SPINCOUNT``) and
    ``elementwise=1`` / ``elementwise=all``."""
    spec = spec.strip()
    src = f"{ENV_VAR}={spec}"
    if spec in ("torch", "default", "none"):
        return ThreadPlan(device, source=src, reason="as given")
    fields: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.rpartition("=")
        key = key or ("adaptive" if value == "adapt" else "threads")
        try:
            if key == "adaptive" and value == "adapt":
                fields["adaptive"] = True
            elif key == "elementwise" and value in ("1", "all"):
                fields["elementwise"] = "one" if value == "1" else "all"
            elif key == "threads" and int(value) >= 1:
                fields["threads"] = int(value)
            elif key == "spin" and int(value) >= 0:
                fields["spin_count"] = int(value)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{ENV_VAR}={spec!r}: {part!r} is not understood; use 'auto', 'torch', or comma-separated "
                "N (threads), adapt, spin=N (GOMP_SPINCOUNT), elementwise=1|all"
            ) from None
    return ThreadPlan(device, source=src, reason="as given", **fields)  # type: ignore[arg-type]


def decide_threads(device: object = "cpu", environ: Mapping[str, str] | None = None) -> ThreadPlan:
    """The thread plan for an IQL step on ``device``. Imports nothing (call it before PyTorch)."""
    env = os.environ if environ is None else environ
    dev = str(device)
    if env.get(ENV_VAR, "auto").strip() not in ("", "auto"):
        return parse_spec(env[ENV_VAR], dev)
    if not dev.startswith("cpu"):
        return ThreadPlan(dev, reason="not a CPU: nothing to decide")
    if spin_count(env) <= SLEEPING:
        return ThreadPlan(
            dev, threads=1, reason="OpenMP threads that sleep at once wake too slowly: one thread is faster"
        )
    return ThreadPlan(dev, adaptive=True, reason="two threads stall while another process holds a core; one does not")


def reexec_with(plan: ThreadPlan) -> None:
    """Restart this very command with ``plan.env()`` in its environment, if something is missing
    (OpenMP reads it only when PyTorch is imported). Returns when nothing is missing."""
    missing = plan.missing_env()
    if not missing:
        return
    what = " ".join(f"{k}={v}" for k, v in missing.items())
    print(f"{plan.describe()}\nrestarting with {what} (OpenMP reads it at start-up)", file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **missing})
