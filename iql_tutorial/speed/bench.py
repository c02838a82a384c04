"""Benchmark: the package's IQL update beside a plain PyTorch update, in one interleaved run.

    python -m iql_tutorial.bench            # full run (a few minutes on 2 CPU cores)
    python -m iql_tutorial.bench --quick    # under a minute

Shapes are HalfCheetah's (obs 17, act 6), batch 256, 2x256 MLPs, 2 critics, fp32. Both
updates sample their batch on the device from the same synthetic 1M-transition table, so
"steps/s" includes sampling. Rounds alternate package and plain so that a busy neighbour or
a change of clock speed hits both alike; the ratio is the figure to compare across machines
(absolute speeds here differ by 2x between machines of the same kind). Nothing asserts a
time: this prints figures.

What the package does differently from the plain update, and what each lever bought (ratios
to the plain update measured in interleaved runs on a 2-core Zen 4 VM, PyTorch 2.13 CPU; the
book's performance appendix has the tables):
- the critic ensemble is one batched matmul per layer (``torch.baddbmm``), not a Python loop;
- fused Adam (one kernel over all of a network's tensors) instead of the per-tensor loop;
- the target critics' min is computed once for the value loss and the AWR weights;
- one backward pass for the sum of the three losses (they touch disjoint parameters);
- the Gaussian log-density is written out (no ``torch.distributions`` object per step);
- Polyak averaging is one ``torch._foreach_lerp_`` over all target tensors;
- no host syncs: losses stay tensors until a logging interval.
  Together (eager): 1.35-1.4x.
- ``torch.compile`` of the losses' forward and backward: 1.45-1.55x (kept as
  ``IQLAgent(compile=True)``; the CUDA-graph path captures it).
- the whole update as one compiled function (``iql_tutorial.whole_step``: ``torch.func.grad``,
  Adam written out, Polyak and the LR schedule on the device): 1.75x with sleeping OpenMP
  threads; + Inductor's ``cpp_wrapper``: no measurable change alone, kept (+0-3%);
  + single-threaded elementwise kernels when threads sleep (``cpp.min_chunk_size``): 1.92x,
  but 1.0x with spinning threads, so it is applied only under ``OMP_WAIT_POLICY=PASSIVE``;
  + the batch gathered inside the graph: +3%. All together: about 2.0x with sleeping threads
  (this project's default) and about 1.55x with spinning threads on an idle machine.
- tried and dropped: ``mode="max-autotune"`` (no change), compiling the optimizers alone (no
  change with spinning threads, +3% with sleeping ones: subsumed by the whole step), packing
  all networks into one 4-member batched matmul (the thin first and last layers run slower as
  batched matmuls; the 256x256 products already run at ~95% of the measured matmul peak).
- bf16 would double the matmul rate on this CPU (avx512_bf16) but changes the results, which
  the target (same numbers as the plain update) rules out; it is offered on the GPU path.

The thread setting matters more than any lever: with spinning threads (``OMP_WAIT_POLICY=ACTIVE``)
on an idle machine *both* updates run about twice as fast as with sleeping ones, because waking
a sleeping worker costs tens of microseconds per parallel region on this VM; with another busy
process, spinning threads collapse (one to two orders of magnitude slower). Run the benchmark
under both (``OMP_WAIT_POLICY=ACTIVE python -m iql_tutorial.bench``) to see your machine's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.data import Transitions
from iql_tutorial.plain import PlainIQL
from iql_tutorial.whole_step import WholeStep, default_inductor_options

OBS, ACT, HIDDEN, BATCH, CRITICS = 17, 6, 256, 256, 2


def synthetic_transitions(
    n: int,
    device: torch.device | str,
    seed: int = 0,
    obs_dim: int = OBS,
    act_dim: int = ACT,
    terminal_rate: float = 0.01,
) -> Transitions:
    """A random table of ``n`` transitions (HalfCheetah's shapes by default), for timing and tests."""
    g = torch.Generator().manual_seed(seed)
    t = Transitions(
        obs=torch.randn(n, obs_dim, generator=g),
        actions=torch.rand(n, act_dim, generator=g) * 2 - 1,
        rewards=torch.randn(n, generator=g),
        next_obs=torch.randn(n, obs_dim, generator=g),
        terminals=(torch.rand(n, generator=g) < terminal_rate).float(),
        timeouts=torch.zeros(n),
        episode_ids=torch.zeros(n, dtype=torch.int64),
    )
    return t.to(device)


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
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    _sync(device)
    return 2.0 * size**3 * n / (time.perf_counter() - t0) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(step: Callable[[], object], n: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return n / (time.perf_counter() - t0)


def make_steps(
    data: Transitions, device: torch.device, mode: str = "eager"
) -> tuple[Callable[[], object], Callable[[], object], IQLAgent]:
    """The package's update and the plain one, from the same initial weights, each drawing its
    batches on the device. ``mode``: ``"eager"`` (``IQLAgent.update``), ``"losses"`` (the losses'
    forward and backward compiled, ``IQLAgent(compile=True)``) or ``"whole"`` (the whole update
    compiled as one function, ``WholeStep``: what ``train --compile`` uses)."""
    if mode not in ("eager", "losses", "whole"):
        raise ValueError(f"mode must be 'eager', 'losses' or 'whole', got {mode!r}")
    torch.manual_seed(0)
    agent = IQLAgent(OBS, ACT, IQLConfig(), device, compile=mode == "losses")
    plain = PlainIQL(OBS, ACT, HIDDEN, CRITICS, device=device)
    plain.load_from_agent(agent)
    gen_a = torch.Generator(device=device).manual_seed(1)
    gen_b = torch.Generator(device=device).manual_seed(1)
    whole = WholeStep(agent) if mode == "whole" else None

    def package_step() -> object:
        if whole is not None:  # the same draws as data.sample, gathered inside the graph
            return whole.run_sampled(data, 1, gen_a)
        return agent.update(data.sample(BATCH, gen_a))

    def plain_step() -> object:
        idx = torch.randint(0, len(data), (BATCH,), device=device, generator=gen_b)
        batch = {
            "obs": data.obs[idx],
            "actions": data.actions[idx],
            "rewards": data.rewards[idx],
            "next_obs": data.next_obs[idx],
            "terminals": data.terminals[idx],
        }
        return plain.update(batch)

    return package_step, plain_step, agent


def phase_breakdown(agent: IQLAgent, data: Transitions, device: torch.device, n: int) -> dict[str, float]:
    """Milliseconds per update spent in each phase, each timed on its own (so the sum can
    differ from a whole step, which also pays Python and allocator overhead)."""
    gen = torch.Generator(device=device).manual_seed(2)
    b = data.sample(BATCH, gen)
    obs, act, nxt = b["obs"], b["actions"], b["next_obs"]

    def critics() -> None:
        agent.target_q_min(obs, act)
        agent.critic(obs, act).square().mean().backward()

    def value() -> None:
        with torch.no_grad():
            agent.value(nxt)
        agent.value(obs).square().mean().backward()

    def actor() -> None:
        agent.actor.log_prob(obs, act).mean().backward()

    def optimizers() -> None:
        agent.value_opt.step()
        agent.critic_opt.step()
        agent.actor_opt.step()

    def target() -> None:
        agent._maybe_update_target()

    phases = {
        "sampling": lambda: data.sample(BATCH, gen),
        "critics (target min + fwd/bwd)": critics,
        "value (V(s') + fwd/bwd)": value,
        "actor (fwd/bwd)": actor,
        "optimizers (3 Adam steps)": optimizers,
        "target update (Polyak)": target,
    }
    critics(), value(), actor()  # create gradients so the optimizers have work
    return {name: 1000.0 / _rate(fn, n, device) for name, fn in phases.items()}


def run(
    quick: bool = False,
    device: str = "cpu",
    rounds: int | None = None,
    steps_per_round: int | None = None,
    compile: bool = True,
) -> dict[str, float]:
    """Time the package's update (eager and compiled) and the plain one in interleaved rounds."""
    dev = torch.device(device)
    rounds = rounds or (4 if quick else 10)
    steps_per_round = steps_per_round or (30 if quick else 150)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {dev}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}"
    )
    data = synthetic_transitions(200_000 if quick else 1_000_000, dev)
    package_step, plain_step, agent = make_steps(data, dev)
    steps = {"package (eager)": package_step, "plain": plain_step}
    if compile:
        # the compiled-losses variant only in the full run: --quick stays under a minute
        for mode, name in [("whole", "package (whole step)")] + ([] if quick else [("losses", "package (losses)")]):
            t0 = time.perf_counter()
            fn, _, _ = make_steps(data, dev, mode)
            fn()
            print(f"torch.compile, {name}: {time.perf_counter() - t0:.0f} s (once per process; cached on disk after)")
            steps[name] = fn
        print(f"Inductor options of the whole step: {default_inductor_options(dev)}")
    for _ in range(5):  # warm-up: allocator, kernels
        for fn in steps.values():
            fn()
    rates: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            rates[name].append(_rate(fn, steps_per_round, dev))
    med = {k: statistics.median(v) for k, v in rates.items()}
    best = max((k for k in med if k.startswith("package")), key=med.get)
    gflops = matmul_gflops(dev)
    flops = flops_per_update()
    limit = gflops * 1e9 / flops
    for name, r in rates.items():
        print(
            f"{name + ':':20s} {med[name]:8.1f} steps/s (median of {rounds} rounds of {steps_per_round}; "
            f"min {min(r):.1f}, max {max(r):.1f})"
        )
    for name in med:
        if name.startswith("package"):
            print(f"  {name} / plain: {med[name] / med['plain']:.2f}")
    print(f"ratio package/plain: {med[best] / med['plain']:.2f}")
    print(
        f"matmul rate: {gflops:.0f} GFLOP/s; one update is {flops / 1e6:.0f} MFLOP, so the arithmetic limit is "
        f"{limit:.0f} steps/s; {best} at {100 * med[best] / limit:.0f}% of it, plain at {100 * med['plain'] / limit:.0f}%"
    )
    print("per-phase breakdown of the eager package update (ms per update, each phase timed alone):")
    phases = phase_breakdown(agent, data, dev, 20 if quick else 100)
    for name, ms in phases.items():
        print(f"  {name:34s} {ms:7.2f} ms")
    print(
        f"  {'sum of phases':34s} {sum(phases.values()):7.2f} ms; whole eager step {1000 / med['package (eager)']:.2f} ms"
    )
    fastest = steps[best]
    if quick:
        t10k = 10_000 / med[best]
        print(
            f"time for 10,000 updates ({best}): {t10k:.0f} s (extrapolated from the measured rate; run without --quick to time it)"
        )
    else:
        t10k = 10_000 / _rate(fastest, 10_000, dev)
        print(f"time for 10,000 updates ({best}): {t10k:.0f} s (timed)")
    return {**med, "ratio": med[best] / med["plain"], "gflops": gflops, "t10k": t10k}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a figure in under a minute")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    run(quick=a.quick, device=a.device, compile=not a.no_compile)


if __name__ == "__main__":
    main()
