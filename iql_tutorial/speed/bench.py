"""Benchmark: the package's IQL update beside a plain PyTorch update, each in its own process, as a user runs them.

    python -m iql_tutorial bench            # full run (2-4 minutes on 2 CPU cores)
    python -m iql_tutorial bench --quick    # under 2 minutes, compilation included
    python -m iql_tutorial bench --smoke    # tiny shapes, a few seconds: checks the machinery only

What it measures is what a user gets:

- Each contender runs in its own Python process, started with your environment as it is: the
  benchmark exports nothing. The plain contender is ``core/plain.py``'s ``PlainIQL`` at PyTorch's
  defaults (a plain script). The package contender is the trainer's default path: the thread
  plan of :func:`iql_tutorial.utils.threads.decide_threads` (printed), applied as the trainer
  applies it, then ``IQLAgent(..., mode="auto")`` and ``agent.run_updates(data, n, generator)``,
  called for 10 updates at a time with the plan's ``adjust()`` before each call.
- Both sample their batches on the device from the same synthetic table (1M transitions;
  HalfCheetah's shapes: observation 17, action 6; batch 256; 2x256 MLPs; 2 critics; fp32), so
  "updates/s" includes sampling. Compilation and a warm-up happen before any round.
- The processes alternate over rounds (the order rotates each round); the ones not being timed
  are stopped (SIGSTOP), so they cannot take a core even if their threads spin. Each round
  starts with 0.6 s of untimed updates. Medians, the spread (min and max over rounds) and the
  ratio of the medians are printed.
- Then the same processes under contention: a busy process (``python -c "while True: pass"``,
  pinned to core 0 where possible), started and stopped by the benchmark, runs during every
  round. Printed: the ratio under contention and each contender's rate as a share of its idle rate.
- Every round also records the load of *other* processes (/proc/stat less the contenders' and
  the busy process's own CPU time), so a figure taken on a shared machine says so. On one:
  ``--wait-quiet S`` waits up to S seconds before a round for a quiet machine, ``--retries N``
  times a round again when another process was busy during it (within ``--quiet-budget``).

Nothing asserts a time: this prints figures. ``--variant SPEC`` adds a package contender run
with ``IQL_THREADS=SPEC`` (see :mod:`iql_tutorial.utils.threads`) or, for a ``SPEC`` of the
form ``NAME=VALUE``, with that variable set, to measure one lever beside the default.

This module measures (the contenders' processes, the rounds, the workers' timing); the lines it
prints are formatted by :mod:`iql_tutorial.speed.report`, and other processes' load is counted by
:class:`iql_tutorial.utils.threads.OthersLoad`, as the adaptive thread plan counts it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any

import torch

from iql_tutorial.data.transitions import synthetic_transitions
from iql_tutorial.speed.report import Report
from iql_tutorial.utils.threads import OthersLoad, ThreadPlan, decide_threads, process_cpu, reexec_with

OBS, ACT, HIDDEN, BATCH, CRITICS = 17, 6, 256, 256, 2
TAG = "@@bench "  # the workers' protocol lines on stdout start with this


def flops_per_update(
    obs: int = OBS, act: int = ACT, hidden: int = HIDDEN, batch: int = BATCH, critics: int = CRITICS
) -> float:
    """Matmul FLOPs of one update: target critics and V(s') forward; V, every critic and the
    actor forward and backward (backward counted as twice the forward)."""

    def fwd(d_in: int, d_out: int) -> float:
        return 2.0 * batch * (d_in * hidden + hidden * hidden + hidden * d_out)

    q, v, pi = fwd(obs + act, 1), fwd(obs, 1), fwd(obs, act)
    return critics * q + v + 3 * v + 3 * critics * q + 3 * pi


def matmul_gflops(device: torch.device, size: int = 1024, seconds: float = 1.0) -> float:
    """The fp32 matrix-product rate of this process's threads (a ``size`` x ``size`` product)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2.0 * size**3 * n / (time.perf_counter() - t0) / 1e9


# ---------------------------------------------------------------------------------------- the workers
@dataclass
class Shapes:
    """The benchmark's problem: HalfCheetah's shapes and the paper's networks by default."""

    obs: int = OBS
    act: int = ACT
    hidden: int = HIDDEN
    batch: int = BATCH
    critics: int = CRITICS
    table: int = 1_000_000

    def args(self) -> list[str]:
        return [f"--{k}={v}" for k, v in vars(self).items()]


SMOKE = Shapes(obs=5, act=3, hidden=32, batch=32, critics=2, table=2_000)


def _send(msg: dict[str, Any]) -> None:
    sys.stdout.write(TAG + json.dumps(msg) + "\n")
    sys.stdout.flush()


def _openmp_env() -> dict[str, str]:
    keys = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "IQL_THREADS")
    return {k: os.environ[k] for k in keys if k in os.environ}


def _make_contender(kind: str, shapes: Shapes, device: str, mode: str) -> tuple[Callable[[int], object], dict]:
    """The contender's ``run(n)`` (n updates) and what it reports about itself."""
    from iql_tutorial.core.agent import IQLAgent
    from iql_tutorial.core.config import IQLConfig
    from iql_tutorial.core.plain import PlainIQL

    dev = torch.device(device)
    data = synthetic_transitions(shapes.table, dev, obs_dim=shapes.obs, act_dim=shapes.act)
    info: dict[str, Any] = {
        "table_mb": sum(getattr(data, k).nbytes for k in vars(data) if torch.is_tensor(getattr(data, k))) / 1e6
    }
    cfg = IQLConfig(hidden_dims=(shapes.hidden, shapes.hidden), num_critics=shapes.critics, batch_size=shapes.batch)
    torch.manual_seed(0)
    if kind == "plain":
        agent = IQLAgent(shapes.obs, shapes.act, cfg, dev)
        plain = PlainIQL(shapes.obs, shapes.act, shapes.hidden, shapes.critics, device=dev)
        plain.load_from_agent(agent)  # the same initial weights as the package's
        del agent
        gen = torch.Generator(device=dev).manual_seed(1)
        n, bs = len(data), shapes.batch

        def run(steps: int) -> object:
            out = None
            for _ in range(steps):
                idx = torch.randint(0, n, (bs,), device=dev, generator=gen)
                batch = {k: getattr(data, k)[idx] for k in ("obs", "actions", "rewards", "next_obs", "terminals")}
                out = plain.update(batch)
            return out

        return run, info
    agent = IQLAgent(shapes.obs, shapes.act, cfg, dev, mode=mode)
    sampler = torch.Generator(device=dev).manual_seed(1)
    info["mode"] = agent.mode
    if agent.mode == "compile":
        from iql_tutorial.core.runner import default_inductor_options

        info["inductor"] = repr(default_inductor_options(dev))
    return functools.partial(agent.run_updates, data, generator=sampler), info


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (Linux and macOS), in MB."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def _timed_round(run: Callable[[int], object], cmd: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    """One round: untimed first, ``settle`` seconds of single updates (an adaptive plan looks at the
    machine every 0.25 s; after being stopped, its first look spans the other contenders' rounds),
    then up to ``run`` updates in calls of ``chunk``, stopping after ``seconds``."""
    s0 = time.perf_counter()
    while time.perf_counter() - s0 < float(cmd.get("settle", 0.0)):
        run(1)
    n, chunk, limit = int(cmd["run"]), int(cmd.get("chunk", 10)), float(cmd.get("seconds", 1e9))
    done = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while done < n and time.perf_counter() - w0 < limit:
        k = min(chunk, n - done)
        run(k)
        done += k
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - w0
    return {"rate": done / dt, "updates": done, "seconds": dt, "cores": (time.process_time() - c0) / dt,
            "threads": torch.get_num_threads()}  # fmt: skip


def _package_plan(device: str, info: dict[str, Any]) -> ThreadPlan:
    """What the trainer does at start (its command line restarts itself when a plan needs that)."""
    plan = decide_threads(device)
    reexec_with(plan)
    info["notes"] = plan.apply()
    info["plan"] = plan.describe()
    return plan


def worker(kind: str, shapes: Shapes, device: str, mode: str, warmup: int) -> None:
    """One contender's process: set up, warm up, then time the ``run`` commands read from stdin."""
    t0 = time.perf_counter()
    info: dict[str, Any] = {"kind": kind}
    plan = _package_plan(device, info) if kind == "package" else None
    run, more = _make_contender(kind, shapes, device, mode)
    info.update(more)
    if plan is not None and plan.adaptive:  # the trainer's loop: plan.adjust() before each call
        inner = run

        def run(steps: int) -> object:
            plan.adjust()
            return inner(steps)

    t1 = time.perf_counter()
    run(1)  # the first update: compiles the step in mode "compile"
    t2 = time.perf_counter()
    run(warmup)
    info.update(
        setup_s=t1 - t0, first_s=t2 - t1, warmup_s=time.perf_counter() - t2, threads=torch.get_num_threads(),
        env=_openmp_env(), torch=torch.__version__, pid=os.getpid(),
    )  # fmt: skip
    _send({"ready": info})
    dev = torch.device(device)
    for line in sys.stdin:
        cmd = json.loads(line)
        if "run" in cmd:
            _send(_timed_round(run, cmd, dev))
        elif "memory" in cmd:
            _send({"peak_mb": _peak_rss_mb()})
        elif "matmul" in cmd:
            _send({"gflops": matmul_gflops(dev, seconds=float(cmd["matmul"]))})
        elif "quit" in cmd:
            break


# ---------------------------------------------------------------------------------------- the parent
def others_load(pids: list[int]) -> OthersLoad:
    """Other processes' load, counting the CPU time of ``pids`` (the contenders, the busy process)
    and of this process as the benchmark's own."""
    return OthersLoad(lambda: sum(process_cpu(p) for p in pids) + time.process_time())


@dataclass
class Contender:
    """One contender's process, spoken to over its stdin and stdout, stopped while not timed."""

    name: str
    kind: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    info: dict[str, Any] = field(default_factory=dict)
    rates: dict[str, list[float]] = field(default_factory=dict)
    cores: dict[str, list[float]] = field(default_factory=dict)
    used: dict[str, list[int]] = field(default_factory=dict)

    def start(self, args: list[str]) -> None:
        cmd = [sys.executable, "-m", "iql_tutorial.speed.bench", "--worker", self.kind, *args]
        self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG) :])
            sys.stderr.write(line)  # anything else it printed
        raise RuntimeError(f"the {self.name} process ended (exit status {self.proc.wait()}); see its errors above")

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        out = self.read()
        self.proc.send_signal(signal.SIGSTOP)  # not timed now: stopped, so it cannot take a core
        return out

    def record(self, phase: str, reply: dict[str, Any]) -> None:
        """A timed round's reply."""
        self.rates.setdefault(phase, []).append(reply["rate"])
        self.cores.setdefault(phase, []).append(reply["cores"])
        self.used.setdefault(phase, []).append(reply["threads"])

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(signal.SIGCONT)
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"quit": 1}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@contextmanager
def busy_process(core: int | None) -> Iterator[subprocess.Popen]:
    """A competing CPU-bound process (a Python busy loop), pinned to ``core`` where possible."""

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin if core is not None else None)
    try:
        time.sleep(0.3)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _contention_core() -> int | None:
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return 0 if 0 in allowed else allowed[0]


class Quiet:
    """Waiting for a quiet machine before a round and timing a round again when another process
    was busy during it, within a budget of seconds for the whole benchmark."""

    def __init__(self, wait: float, retries: int, threshold: float, budget: float) -> None:
        self.wait, self.retries, self.threshold, self.budget = wait, retries, threshold, budget
        self.spent, self.redone = 0.0, 0

    def settle(self, own: list[int]) -> None:
        """Wait up to ``wait`` s for a 1-s window in which other processes use < ``threshold`` cores."""
        t0 = time.perf_counter()
        while self.wait > 0 and self.spent < self.budget and time.perf_counter() - t0 < self.wait:
            bg = others_load(own)
            time.sleep(1.0)
            self.spent += 1.0
            load = bg.look()
            if load is None or load < self.threshold:
                return

    def again(self, load: float | None, attempt: int, seconds: float) -> bool:
        """Whether to time the round again (counting ``seconds`` against the budget)."""
        if load is None or load <= self.threshold or attempt >= self.retries or self.spent >= self.budget:
            return False
        self.spent += seconds
        self.redone += 1
        return True


@dataclass(frozen=True)
class Settings:
    """One benchmark's numbers, defaults filled in (see :func:`settings_for`)."""

    shapes: Shapes
    rounds: int
    steps: int
    settle: float
    round_seconds: float
    warmup: int
    device: str
    package_mode: str

    @property
    def chunk(self) -> int:
        """Updates per call (agent.run_updates(data, 10), the trainer's run_updates(data, n) in pieces)."""
        return min(self.steps, 10)

    def worker_args(self) -> list[str]:
        return [*self.shapes.args(), f"--device={self.device}", f"--package-mode={self.package_mode}",
                f"--warmup={self.warmup}"]  # fmt: skip


def settings_for(
    quick: bool = False,
    smoke: bool = False,
    rounds: int | None = None,
    steps: int | None = None,
    settle: float = 0.6,
    round_seconds: float = 3.0,
    shapes: Shapes | None = None,
    device: str = "cpu",
    package_mode: str = "auto",
) -> Settings:
    """The full run's numbers, ``--quick``'s or ``--smoke``'s, where not given."""
    if smoke:
        shapes, rounds, steps, settle = shapes or SMOKE, rounds or 2, steps or 5, 0.0
    return Settings(
        shapes=shapes or Shapes(table=200_000 if quick else 1_000_000),
        rounds=rounds or (5 if quick else 9),
        steps=steps or (100 if quick else 200),
        settle=settle,
        round_seconds=round_seconds,
        warmup=2 if smoke else 10,
        device=device,
        package_mode=package_mode,
    )


def _contenders(variants: tuple[str, ...]) -> list[Contender]:
    """The plain contender first, the package's, then one per ``--variant``: all in your environment."""
    user_env = dict(os.environ)
    contenders = [Contender("plain", "plain", user_env), Contender("package", "package", user_env)]
    for spec in variants:
        # NAME=VALUE sets that variable; anything else is a thread spec (IQL_THREADS=SPEC)
        name, value = spec.split("=", 1) if "=" in spec else ("IQL_THREADS", spec)
        contenders.append(Contender(f"package [{name}={value}]", "package", {**user_env, name: value}))
    return contenders


def _start(contenders: list[Contender], st: Settings, report: Report) -> float:
    """Start the contenders one at a time (so that compilation times are not mixed up), each
    stopped once warm; returns the seconds the package's first updates took (compilation)."""
    for c in contenders:
        w0 = time.perf_counter()
        c.start(st.worker_args())
        c.info = c.read()["ready"]
        assert c.proc is not None
        c.proc.send_signal(signal.SIGSTOP)
        report.started(c, time.perf_counter() - w0)
    return sum((c.info["first_s"] for c in contenders if c.kind == "package"), 0.0)


def _time_round(c: Contender, st: Settings, quiet: Quiet, watched: list[int]) -> tuple[dict, float | None]:
    """Time one round of ``c`` (again while others were busy, as ``quiet`` allows): its reply and
    other processes' load during it."""
    attempt = 0
    while True:
        quiet.settle(watched)
        bg = others_load(watched)
        reply = c.ask(run=st.steps, chunk=st.chunk, seconds=st.round_seconds, settle=st.settle)
        load = bg.look()
        if not quiet.again(load, attempt, st.settle + reply["seconds"]):
            return reply, load
        attempt += 1


def _rounds(phase: str, contenders: list[Contender], st: Settings, quiet: Quiet, watched: list[int]) -> list[float]:
    """Every round of a phase, the order rotating each round; returns other processes' loads."""
    background: list[float] = []
    for r in range(st.rounds):
        k = r % len(contenders)
        for c in contenders[k:] + contenders[:k]:
            reply, load = _time_round(c, st, quiet, watched)
            if load is not None:
                background.append(load)
            c.record(phase, reply)
    return background


def _phase(phase: str, contenders: list[Contender], st: Settings, quiet: Quiet, report: Report) -> None:
    """One phase ("idle", or "contended": with a busy process) and its table."""
    own = [c.proc.pid for c in contenders if c.proc is not None]
    contended = phase == "contended"
    core = _contention_core() if contended else None
    redone0 = quiet.redone
    with busy_process(core) if contended else nullcontext() as busy:
        if busy is not None:
            report.busy_process(busy.pid, core)
        watched = own + ([busy.pid] if busy is not None else [])
        background = _rounds(phase, contenders, st, quiet, watched)
    report.phase(phase, contenders, background, quiet.redone - redone0 if quiet.retries else None)


def _figures(contenders: list[Contender], phases: list[str]) -> dict[str, float]:
    """Each contender's median rate per phase, the package's ratios to plain and its robustness."""
    figures = {f"{c.name} {phase}": statistics.median(c.rates[phase]) for c in contenders for phase in phases}
    figures["ratio"] = figures["package idle"] / figures["plain idle"]
    if "contended" in phases:
        figures["ratio contended"] = figures["package contended"] / figures["plain contended"]
        figures["robustness"] = figures["package contended"] / figures["package idle"]
    return figures


def _measure(
    contenders: list[Contender], st: Settings, phases: list[str], quiet: Quiet, report: Report, matmul: bool
) -> tuple[dict[str, float], float]:
    """Start the contenders, time every phase and report; returns the figures and the compilation seconds."""
    compile_s = _start(contenders, st, report)
    for phase in phases:
        _phase(phase, contenders, st, quiet, report)
    figures = _figures(contenders, phases)
    if "contended" in phases:
        report.contention_shares(contenders, figures)
    if matmul:
        s = st.shapes
        report.arithmetic_limit(contenders[0].ask(matmul=1.0)["gflops"],
                                flops_per_update(s.obs, s.act, s.hidden, s.batch, s.critics), figures)  # fmt: skip
    report.million_updates(figures)
    report.memory(contenders[0].info["table_mb"], {c.name: c.ask(memory=1)["peak_mb"] for c in contenders})
    return figures, compile_s


def run(
    quick: bool = False,
    smoke: bool = False,
    rounds: int | None = None,
    steps: int | None = None,
    device: str = "cpu",
    contention: bool = True,
    variants: tuple[str, ...] = (),
    package_mode: str = "auto",
    round_seconds: float = 3.0,
    settle: float = 0.6,
    quiet: Quiet | None = None,
    shapes: Shapes | None = None,
    out: IO[str] | None = None,
) -> dict[str, float]:
    """Run the protocol of the module docstring and print it; returns the figures."""
    wall0 = time.perf_counter()
    st = settings_for(quick, smoke, rounds, steps, settle, round_seconds, shapes, device, package_mode)
    quiet = quiet or Quiet(0.0, 0, 0.15, 0.0)
    report = Report(out)
    report.header(st.shapes, device, _openmp_env(), rounds=st.rounds, steps=st.steps, chunk=st.chunk,
                  settle=st.settle, round_seconds=round_seconds)  # fmt: skip
    contenders = _contenders(variants)
    phases = ["idle", "contended"] if contention else ["idle"]
    try:
        figures, compile_s = _measure(contenders, st, phases, quiet, report, matmul=not quick and not smoke)
    finally:
        for c in contenders:
            c.close()
    wall = time.perf_counter() - wall0
    report.footer(quiet, wall, compile_s)
    figures["wall_s"], figures["compile_s"] = wall, compile_s
    return figures


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a figure in under 2 minutes (compilation included)")
    p.add_argument("--smoke", action="store_true", help="tiny shapes and few updates: checks the machinery only")
    p.add_argument("--rounds", type=int, default=None, help="rounds per phase (default 9; --quick 5)")
    p.add_argument("--steps", type=int, default=None, help="updates per round (default 200; --quick 100)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-contention", action="store_true", help="skip the contended phase")
    p.add_argument("--variant", action="append", default=[], metavar="SPEC",
                   help="an extra package contender run with IQL_THREADS=SPEC, or with NAME=VALUE set (repeatable)")  # fmt: skip
    p.add_argument("--package-mode", default="auto", help="the package's mode (default auto: the trainer's)")
    p.add_argument("--round-seconds", type=float, default=3.0, metavar="S",
                   help="a round stops after S seconds even if its updates are not done (slow contenders)")  # fmt: skip
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                   help="before each round, wait up to S seconds for other processes to go quiet")  # fmt: skip
    p.add_argument("--retries", type=int, default=0, metavar="N",
                   help="time a round again (up to N times) when other processes used more than --max-background")  # fmt: skip
    p.add_argument("--max-background", type=float, default=0.1, metavar="CORES", help="see --wait-quiet, --retries")
    p.add_argument("--quiet-budget", type=float, default=120.0, metavar="S",
                   help="at most S seconds in all of waiting for quiet and timing again")  # fmt: skip
    p.add_argument("--out", default=None, help="also write the output to this file (with the command line)")
    p.add_argument("--note", default=None, help="a line of your own at the top of --out's file")
    # the workers' own arguments
    p.add_argument("--worker", choices=("plain", "package"), help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=10, help=argparse.SUPPRESS)
    for k in vars(Shapes()):
        p.add_argument(f"--{k}", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _refuse_out_of_range(a: argparse.Namespace) -> None:
    """A number out of range is one line and exit status 2, before anything starts."""
    for flag, value, least in (("--rounds", a.rounds, 1), ("--steps", a.steps, 1), ("--retries", a.retries, 0),
                               ("--round-seconds", a.round_seconds, 1e-9), ("--wait-quiet", a.wait_quiet, 0),
                               ("--quiet-budget", a.quiet_budget, 0), ("--max-background", a.max_background, 0)):  # fmt: skip
        if value is not None and value < least:
            need = "a positive number" if least > 0 else "0 or more"
            print(f"error: {flag} {value}: must be {need}.", file=sys.stderr)
            sys.exit(2)


def _refuse_bad_flags(a: argparse.Namespace) -> None:
    """A device, mode, variant or --out that cannot work is one line and exit status 2, before
    any contender starts (a bad variant would otherwise fail only when its turn comes)."""
    from iql_tutorial.core.agent import MODES
    from iql_tutorial.utils.device import resolve_device
    from iql_tutorial.utils.threads import ENV_VAR, parse_spec

    problem = None
    try:
        resolve_device(a.device)
    except ValueError as e:
        problem = f"--device {a.device}: {e}"
    if problem is None and a.package_mode not in MODES:
        problem = f"--package-mode {a.package_mode}: choose one of {', '.join(MODES)}."
    for spec in a.variant if problem is None else ():
        name, value = spec.split("=", 1) if "=" in spec else (ENV_VAR, spec)
        if not name.replace("_", "a").isalnum() or name[0].isdigit():
            problem = f"--variant {spec}: {name!r} is not an environment variable's name; give NAME=VALUE or an {ENV_VAR} spec."
        elif name == ENV_VAR and value.strip() not in ("", "auto"):  # auto: decide_threads, always valid
            try:
                parse_spec(value, a.device)
            except ValueError as e:
                problem = f"--variant {spec}: {e}"
        if problem:
            break
    if problem is None and a.out is not None:
        folder = os.path.dirname(os.path.abspath(a.out))
        if os.path.isdir(a.out):
            problem = f"--out {a.out} is a folder; give a file name, e.g. --out {os.path.join(a.out, 'bench.txt')}."
        elif not os.path.isdir(folder):
            problem = f"--out {a.out}: the folder {folder} does not exist; create it first, or choose another file."
    if problem is not None:
        print(f"error: {' '.join(problem.split())}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    _refuse_out_of_range(a)
    if not a.worker:
        _refuse_bad_flags(a)
    given = {k: getattr(a, k) for k in vars(Shapes()) if getattr(a, k) is not None}
    if a.worker:
        worker(a.worker, Shapes(**given), a.device, a.package_mode, a.warmup)
        return
    out = open(a.out, "w") if a.out else None  # noqa: SIM115
    try:
        if out is not None:
            cmd = shlex.join(["python", "-m", "iql_tutorial", "bench", *(sys.argv[1:] if argv is None else argv)])
            Report(out).preamble(cmd, a.note)
        run(
            quick=a.quick, smoke=a.smoke, rounds=a.rounds, steps=a.steps, device=a.device,
            contention=not a.no_contention, variants=tuple(a.variant), package_mode=a.package_mode,
            round_seconds=a.round_seconds, quiet=Quiet(a.wait_quiet, a.retries, a.max_background, a.quiet_budget),
            shapes=Shapes(**given) if given else None, out=out,
        )  # fmt: skip
    finally:
        if out is not None:
            out.close()


if __name__ == "__main__":
    main()
