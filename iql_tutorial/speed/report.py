"""The benchmark's report: the lines :mod:`iql_tutorial.speed.bench` prints as it measures, and
writes to ``--out``'s file too.

Nothing here measures: each method formats what the benchmark measured (the contenders' rates,
the load of other processes, the machine it ran on) into the lines the performance appendix quotes.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import IO, Any, Protocol

import torch


class ShapesLike(Protocol):
    """The benchmark's problem (``bench.Shapes``)."""

    obs: int
    act: int
    hidden: int
    batch: int
    critics: int
    table: int


class ContenderLike(Protocol):
    """What the report reads of a contender (``bench.Contender``): what it said of itself when it
    started, and each phase's rates, cores busy and thread counts, round by round."""

    name: str
    kind: str
    info: dict[str, Any]
    rates: dict[str, list[float]]
    cores: dict[str, list[float]]
    used: dict[str, list[int]]


class QuietLike(Protocol):
    """Waiting for quiet and timing again (``bench.Quiet``)."""

    wait: float
    retries: int
    budget: float
    spent: float


def loadavg() -> str:
    """/proc/loadavg as it reads, or "n/a"."""
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return "n/a"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _env_words(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items())


def _stats(xs: list[float]) -> str:
    return f"median of {len(xs)} rounds; min {min(xs):.1f}, max {max(xs):.1f}"


class Report:
    """The benchmark's lines: printed as they come (flushed), and written to ``out`` too."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        if self.out is not None:
            self.out.write(line + "\n")
            self.out.flush()

    # ------------------------------------------------------------------------------ before the rounds
    def preamble(self, command: str, note: str | None = None) -> None:
        """--out's file only: the command line and the time it started, and the user's ``note``."""
        if self.out is not None:
            self.out.write(f"# {command}  ({time.strftime('%Y-%m-%d %H:%M')})\n")
            if note:
                self.out.write(f"# {note}\n")

    def header(
        self,
        shapes: ShapesLike,
        device: str,
        env: dict[str, str],
        *,
        rounds: int,
        steps: int,
        chunk: int,
        settle: float,
        round_seconds: float,
    ) -> None:
        """The machine, the user's environment (``env``), the problem and the protocol."""
        allowed = (
            sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
        )
        self.say(f"machine: {cpu_model()}, {len(allowed)} cores ({platform.system()} {platform.release()}), "
                 f"Python {platform.python_version()}, torch {torch.__version__}, device {device}")  # fmt: skip
        self.say(f"environment: {_env_words(env) or 'no OpenMP/thread variables set'} "
                 "(yours; the benchmark sets none)")  # fmt: skip
        self.say(f"shapes: obs {shapes.obs}, act {shapes.act}, batch {shapes.batch}, {shapes.hidden}x{shapes.hidden}, "
                 f"{shapes.critics} critics, fp32; table of {shapes.table:,} transitions")  # fmt: skip
        self.say(f"rounds: {rounds} per phase and contender, each {settle:g} s untimed, then {steps} updates in calls "
                 f"of {chunk} (or as many as {round_seconds:g} s allow); contenders alternate, the others stopped")  # fmt: skip
        self.say(f"load average before: {loadavg()}")

    def started(self, c: ContenderLike, start_s: float) -> None:
        """A contender that has started and warmed up: its thread plan (the package's), its threads."""
        if c.kind == "package":
            self.say(f"{c.name}: {c.info['plan']}")
            for note in c.info.get("notes", []):
                self.say(f"{c.name}: note: {note}")
            self.say(f"{c.name}: mode {c.info.get('mode')}, Inductor options {c.info.get('inductor', '-')}")
        compiled = ", compilation included" if c.info.get("mode") == "compile" else ""
        self.say(f"{c.name}: {c.info['threads']} torch thread(s) after warm-up, environment "
                 f"{_env_words(c.info['env']) or '(none set)'}; started in {start_s:.1f} s (the first update "
                 f"{c.info['first_s']:.1f} s{compiled}) (pid {c.info['pid']})")  # fmt: skip

    def busy_process(self, pid: int, core: int | None) -> None:
        where = f"pinned to core {core}" if core is not None else "unpinned"
        self.say(f"contended: a busy process (python -c 'while True: pass', pid {pid}) {where} runs during every round")

    # --------------------------------------------------------------------------------- after a phase
    def phase(
        self, phase: str, contenders: Sequence[ContenderLike], background: list[float], redone: int | None
    ) -> None:
        """A phase's table: other processes' load (``redone``: rounds timed again, None: no retries),
        each contender's median rate, and each package contender's ratio to the plain one (the first)."""
        if background:
            again = f"; {redone} round(s) timed again" if redone is not None else ""
            self.say(f"{phase}: other processes' load during the rounds: mean {statistics.mean(background):.2f} "
                     f"cores, max {max(background):.2f}{again}")  # fmt: skip
        med = {c.name: statistics.median(c.rates[phase]) for c in contenders}
        width = max(len(c.name) for c in contenders) + 1
        for c in contenders:
            threads_used = "/".join(str(t) for t in sorted(set(c.used[phase])))
            self.say(f"{phase}: {c.name + ':':{width}s} {med[c.name]:7.1f} updates/s ({_stats(c.rates[phase])}; "
                     f"{statistics.median(c.cores[phase]):.2f} cores busy, {threads_used} thread(s))")  # fmt: skip
        plain = contenders[0]
        suffix = "" if phase == "idle" else " under contention"
        for c in contenders[1:]:
            per_round = [a / b for a, b in zip(c.rates[phase], plain.rates[phase], strict=True)]
            self.say(f"ratio {c.name}/plain{suffix}: {med[c.name] / med[plain.name]:.2f}")
            self.say(f"  ({c.name}/plain round by round{suffix}: min {min(per_round):.2f}, max {max(per_round):.2f})")

    # ----------------------------------------------------------------------------- after the phases
    def contention_shares(self, contenders: Sequence[ContenderLike], figures: dict[str, float]) -> None:
        for c in contenders:
            share = figures[f"{c.name} contended"] / figures[f"{c.name} idle"]
            self.say(f"{c.name} under contention: {100 * share:.0f}% of its idle rate")

    def arithmetic_limit(self, gflops: float, flops: float, figures: dict[str, float]) -> None:
        """The plain process's matrix-product rate (``gflops``) against one update's ``flops``."""
        limit = gflops * 1e9 / flops
        self.say(f"matmul rate (the plain process, 1024x1024 fp32): {gflops:.0f} GFLOP/s; one update is "
                 f"{flops / 1e6:.0f} MFLOP of matrix products, so the arithmetic limit is {limit:.0f} updates/s; "
                 f"package at {100 * figures['package idle'] / limit:.0f}% of it, plain at "
                 f"{100 * figures['plain idle'] / limit:.0f}%")  # fmt: skip

    def million_updates(self, figures: dict[str, float]) -> None:
        self.say(f"1M updates at the package's idle rate: {1e6 / figures['package idle'] / 60:.0f} min on this machine")

    def memory(self, table_mb: float, peaks: dict[str, float | None]) -> None:
        """The table's size and each process's peak resident memory (nothing where one is unknown)."""
        if all(v is not None for v in peaks.values()):
            self.say(f"memory: the table is {table_mb:.0f} MB; peak resident memory of each process: "
                     + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items()))  # fmt: skip

    def footer(self, quiet: QuietLike, wall: float, compile_s: float) -> None:
        if quiet.retries or quiet.wait:
            self.say(f"waiting for quiet and timing again: {quiet.spent:.0f} s of a budget of {quiet.budget:g} s")
        self.say(f"load average after: {loadavg()}")
        self.say(
            f"benchmark wall time: {wall:.0f} s, of which compilation (the package's first update) {compile_s:.0f} s"
        )
