"""Benchmark: the package's IQL update beside a plain PyTorch update, each in its own process, as a user runs them.

    python -m iql_tutorial.bench            # full run (2-4 minutes on 2 CPU cores)
    python -m iql_tutorial.bench --quick    # under 2 minutes, compilation included
    python -m iql_tutorial.bench --smoke    # tiny shapes, a few seconds: checks the machinery only

What it measures is what a user gets:

- Each contender runs in its own Python process, started with your environment as it is: the
  benchmark exports nothing. The plain contender is ``core/plain.py``'s ``PlainIQL`` at PyTorch's
  defaults (a plain script). The package contender is the trainer's default path: the thread
  plan of :func:`iql_tutorial.speed.threads.decide_threads` (printed), applied as the trainer
  applies it, then ``IQLAgent(..., mode="auto")`` and ``agent.runner(data, generator).run(n)``,
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
with ``IQL_THREADS=SPEC`` (see :mod:`iql_tutorial.speed.threads`), to measure one lever beside
the default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import torch

from iql_tutorial.data.transitions import synthetic_transitions
from iql_tutorial.speed.threads import machine_busy

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
    runner = agent.runner(data, torch.Generator(device=dev).manual_seed(1))
    info["mode"] = agent.mode
    if agent.mode == "compile":
        from iql_tutorial.speed.runner import default_inductor_options

        info["inductor"] = repr(default_inductor_options(dev))
    return runner.run, info


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (Linux and macOS), in MB."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def worker(kind: str, shapes: Shapes, device: str, mode: str, warmup: int) -> None:
    """One contender's process: set up, warm up, then time the ``run`` commands read from stdin."""
    t0 = time.perf_counter()
    info: dict[str, Any] = {"kind": kind}
    plan = None
    if kind == "package":  # what the trainer does at start; its command line restarts itself
        from iql_tutorial.speed.threads import decide_threads, reexec_with  # when a plan needs that

        plan = decide_threads(device)
        reexec_with(plan)
        info["notes"] = plan.apply()
        info["plan"] = plan.describe()
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
            # untimed first: ``settle`` seconds of single updates (an adaptive plan looks at the
            # machine every 0.25 s; after being stopped, its first look spans the other contenders'
            # rounds), then up to ``run`` updates in calls of ``chunk``, stopping after ``seconds``
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
            _send({"rate": done / dt, "updates": done, "seconds": dt, "cores": (time.process_time() - c0) / dt,
                   "threads": torch.get_num_threads()})  # fmt: skip
        elif "memory" in cmd:
            _send({"peak_mb": _peak_rss_mb()})
        elif "matmul" in cmd:
            _send({"gflops": matmul_gflops(dev, seconds=float(cmd["matmul"]))})
        elif "quit" in cmd:
            break


# ---------------------------------------------------------------------------------------- the parent
def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def _process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / _clock_ticks()
    except (OSError, IndexError, ValueError):
        return 0.0


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return "n/a"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Background:
    """The CPU use of processes other than ``own`` and this one (in cores) between ``start`` and ``stop``."""

    def __init__(self, own: list[int]) -> None:
        self.own = own

    def _mine(self) -> float:
        return sum(_process_cpu(p) for p in self.own) + time.process_time()

    def start(self) -> None:
        self.t, self.busy, self.mine = time.perf_counter(), machine_busy(), self._mine()

    def stop(self) -> float | None:
        busy = machine_busy()
        if busy is None or self.busy is None:
            return None
        dt = time.perf_counter() - self.t
        return max(0.0, (busy - self.busy) - (self._mine() - self.mine)) / max(dt, 1e-9)


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
            bg = Background(own)
            bg.start()
            time.sleep(1.0)
            self.spent += 1.0
            load = bg.stop()
            if load is None or load < self.threshold:
                return

    def again(self, load: float | None, attempt: int, seconds: float) -> bool:
        """Whether to time the round again (counting ``seconds`` against the budget)."""
        if load is None or load <= self.threshold or attempt >= self.retries or self.spent >= self.budget:
            return False
        self.spent += seconds
        self.redone += 1
        return True


def _stats(xs: list[float]) -> str:
    return f"median of {len(xs)} rounds; min {min(xs):.1f}, max {max(xs):.1f}"


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
    if smoke:
        shapes, rounds, steps, settle = shapes or SMOKE, rounds or 2, steps or 5, 0.0
    shapes = shapes or Shapes(table=200_000 if quick else 1_000_000)
    rounds = rounds or (5 if quick else 9)
    steps = steps or (100 if quick else 200)
    quiet = quiet or Quiet(0.0, 0, 0.15, 0.0)
    chunk = min(steps, 10)  # updates per call (runner.run(10), the trainer's runner.run(n) in pieces)
    warmup = 2 if smoke else 10

    def say(line: str = "") -> None:
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
            out.flush()

    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    say(f"machine: {_cpu_model()}, {len(allowed)} cores ({platform.system()} {platform.release()}), "
        f"Python {platform.python_version()}, torch {torch.__version__}, device {device}")  # fmt: skip
    env_seen = _openmp_env()
    say(f"environment: {' '.join(f'{k}={v}' for k, v in env_seen.items()) or 'no OpenMP/thread variables set'} "
        "(yours; the benchmark sets none)")  # fmt: skip
    say(f"shapes: obs {shapes.obs}, act {shapes.act}, batch {shapes.batch}, {shapes.hidden}x{shapes.hidden}, "
        f"{shapes.critics} critics, fp32; table of {shapes.table:,} transitions")  # fmt: skip
    say(f"rounds: {rounds} per phase and contender, each {settle:g} s untimed, then {steps} updates in calls of "
        f"{chunk} (or as many as {round_seconds:g} s allow); contenders alternate, the others stopped")  # fmt: skip
    say(f"load average before: {_loadavg()}")
    user_env = dict(os.environ)
    contenders = [Contender("plain", "plain", user_env), Contender("package", "package", user_env)]
    for spec in variants:
        contenders.append(Contender(f"package [IQL_THREADS={spec}]", "package", {**user_env, "IQL_THREADS": spec}))
    args = [*shapes.args(), f"--device={device}", f"--package-mode={package_mode}", f"--warmup={warmup}"]
    compile_s = 0.0
    figures: dict[str, float] = {}
    try:
        for c in contenders:  # one at a time, so that compilation times are not mixed up
            w0 = time.perf_counter()
            c.start(args)
            c.info = c.read()["ready"]
            assert c.proc is not None
            c.proc.send_signal(signal.SIGSTOP)
            start_s = time.perf_counter() - w0
            if c.kind == "package":
                compile_s += c.info["first_s"]
                say(f"{c.name}: {c.info['plan']}")
                for note in c.info.get("notes", []):
                    say(f"{c.name}: note: {note}")
                say(f"{c.name}: mode {c.info.get('mode')}, Inductor options {c.info.get('inductor', '-')}")
            compiled = ", compilation included" if c.info.get("mode") == "compile" else ""
            say(f"{c.name}: {c.info['threads']} torch thread(s) after warm-up, environment "
                f"{' '.join(f'{k}={v}' for k, v in c.info['env'].items()) or '(none set)'}; started in "
                f"{start_s:.1f} s (the first update {c.info['first_s']:.1f} s{compiled}) (pid {c.info['pid']})")  # fmt: skip
        own = [c.proc.pid for c in contenders if c.proc is not None]
        phases = ["idle", "contended"] if contention else ["idle"]
        for phase in phases:
            core = _contention_core() if phase == "contended" else None
            with busy_process(core) if phase == "contended" else _nothing() as busy:
                if busy is not None:
                    where = f"pinned to core {core}" if core is not None else "unpinned"
                    say(f"contended: a busy process (python -c 'while True: pass', pid {busy.pid}) {where} "
                        "runs during every round")  # fmt: skip
                watched = own + ([busy.pid] if busy is not None else [])
                background: list[float] = []
                redone0 = quiet.redone
                for r in range(rounds):
                    order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
                    for c in order:
                        attempt = 0
                        while True:
                            quiet.settle(watched)
                            bg = Background(watched)
                            bg.start()
                            reply = c.ask(run=steps, chunk=chunk, seconds=round_seconds, settle=settle)
                            load = bg.stop()
                            if not quiet.again(load, attempt, settle + reply["seconds"]):
                                break
                            attempt += 1
                        if load is not None:
                            background.append(load)
                        c.rates.setdefault(phase, []).append(reply["rate"])
                        c.cores.setdefault(phase, []).append(reply["cores"])
                        c.used.setdefault(phase, []).append(reply["threads"])
            if background:
                again = f"; {quiet.redone - redone0} round(s) timed again" if quiet.retries else ""
                say(f"{phase}: other processes' load during the rounds: mean {statistics.mean(background):.2f} "
                    f"cores, max {max(background):.2f}{again}")  # fmt: skip
            med = {c.name: statistics.median(c.rates[phase]) for c in contenders}
            width = max(len(c.name) for c in contenders) + 1
            for c in contenders:
                threads_used = "/".join(str(t) for t in sorted(set(c.used[phase])))
                say(f"{phase}: {c.name + ':':{width}s} {med[c.name]:7.1f} updates/s ({_stats(c.rates[phase])}; "
                    f"{statistics.median(c.cores[phase]):.2f} cores busy, {threads_used} thread(s))")  # fmt: skip
            plain = contenders[0]
            suffix = "" if phase == "idle" else " under contention"
            for c in contenders[1:]:
                per_round = [a / b for a, b in zip(c.rates[phase], plain.rates[phase], strict=True)]
                say(f"ratio {c.name}/plain{suffix}: {med[c.name] / med['plain']:.2f}")
                say(f"  ({c.name}/plain round by round{suffix}: min {min(per_round):.2f}, max {max(per_round):.2f})")
        for c in contenders:
            for phase in phases:
                figures[f"{c.name} {phase}"] = statistics.median(c.rates[phase])
        if contention:
            for c in contenders:
                share = figures[f"{c.name} contended"] / figures[f"{c.name} idle"]
                say(f"{c.name} under contention: {100 * share:.0f}% of its idle rate")
        figures["ratio"] = figures["package idle"] / figures["plain idle"]
        if contention:
            figures["ratio contended"] = figures["package contended"] / figures["plain contended"]
            figures["robustness"] = figures["package contended"] / figures["package idle"]
        if not quick and not smoke:
            gflops = contenders[0].ask(matmul=1.0)["gflops"]
            flops = flops_per_update(shapes.obs, shapes.act, shapes.hidden, shapes.batch, shapes.critics)
            limit = gflops * 1e9 / flops
            say(f"matmul rate (the plain process, 1024x1024 fp32): {gflops:.0f} GFLOP/s; one update is "
                f"{flops / 1e6:.0f} MFLOP of matrix products, so the arithmetic limit is {limit:.0f} updates/s; "
                f"package at {100 * figures['package idle'] / limit:.0f}% of it, plain at "
                f"{100 * figures['plain idle'] / limit:.0f}%")  # fmt: skip
        say(f"1M updates at the package's idle rate: {1e6 / figures['package idle'] / 60:.0f} min on this machine")
        peaks = {c.name: c.ask(memory=1)["peak_mb"] for c in contenders}
        if all(v is not None for v in peaks.values()):
            say(f"memory: the table is {contenders[0].info['table_mb']:.0f} MB; peak resident memory of each process: "
                + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items()))  # fmt: skip
    finally:
        for c in contenders:
            c.close()
    wall = time.perf_counter() - wall0
    if quiet.retries or quiet.wait:
        say(f"waiting for quiet and timing again: {quiet.spent:.0f} s of a budget of {quiet.budget:g} s")
    say(f"load average after: {_loadavg()}")
    say(f"benchmark wall time: {wall:.0f} s, of which compilation (the package's first update) {compile_s:.0f} s")
    figures["wall_s"], figures["compile_s"] = wall, compile_s
    return figures


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a figure in under 2 minutes (compilation included)")
    p.add_argument("--smoke", action="store_true", help="tiny shapes and few updates: checks the machinery only")
    p.add_argument("--rounds", type=int, default=None, help="rounds per phase (default 9; --quick 5)")
    p.add_argument("--steps", type=int, default=None, help="updates per round (default 200; --quick 100)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-contention", action="store_true", help="skip the contended phase")
    p.add_argument("--variant", action="append", default=[], metavar="SPEC",
                   help="an extra package contender run with IQL_THREADS=SPEC (repeatable; see speed/threads.py)")  # fmt: skip
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
    a = p.parse_args(argv)
    for flag, value, least in (("--rounds", a.rounds, 1), ("--steps", a.steps, 1), ("--retries", a.retries, 0),
                               ("--round-seconds", a.round_seconds, 1e-9), ("--wait-quiet", a.wait_quiet, 0),
                               ("--quiet-budget", a.quiet_budget, 0), ("--max-background", a.max_background, 0)):  # fmt: skip
        if value is not None and value < least:
            need = "a positive number" if least > 0 else "0 or more"
            print(f"error: {flag} {value}: must be {need}.", file=sys.stderr)
            sys.exit(2)
    given = {k: getattr(a, k) for k in vars(Shapes()) if getattr(a, k) is not None}
    if a.worker:
        worker(a.worker, Shapes(**given), a.device, a.package_mode, a.warmup)
        return
    out = open(a.out, "w") if a.out else None  # noqa: SIM115
    try:
        if out is not None:
            cmd = shlex.join(["python", "-m", "iql_tutorial.bench", *(sys.argv[1:] if argv is None else argv)])
            out.write(f"# {cmd}  ({time.strftime('%Y-%m-%d %H:%M')})\n")
            if a.note:
                out.write(f"# {a.note}\n")
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
