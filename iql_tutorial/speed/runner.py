"""The one IQL update (:func:`iql_tutorial.core.update.iql_update`) run three ways.

- ``"eager"``: call the function as it is (Python runs every kernel).
- ``"compile"``: ``torch.compile(iql_update, fullgraph=True)``: Inductor fuses the elementwise
  work of the forward pass, the backward pass, the three Adams and Polyak into a few dozen kernels
  around the matmuls. The fastest CPU path (numbers in the performance appendix).
- ``"cuda-graph"``: the compiled function, with the batch indices drawn inside it, captured once
  as a CUDA graph and replayed: one launch per update instead of a few hundred. Needs CUDA.

:class:`UpdateRunner` is what calls it: it hands the function the agent's Adam states and a device
counter of updates, and keeps the agent's host counter ``num_updates`` and its actor optimizer's
logged ``lr`` in step, so logging, checkpoints and a later update carry on exactly.
``resolve_mode("auto", ...)`` (:mod:`iql_tutorial.core.agent`) picks the fastest mode the
machine supports and says why when it falls back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from iql_tutorial.core.agent import MODES, IQLAgent, have_cpp_compiler, resolve_mode
from iql_tutorial.core.update import TABLE_KEYS, adam_state, cosine_lr, iql_update
from iql_tutorial.utils import first_line, threads

__all__ = [
    "MODES",
    "CudaGraphUpdate",
    "UpdateRunner",
    "TorchCudaGraph",
    "compiled",
    "default_inductor_options",
    "have_cpp_compiler",
    "resolve_mode",
]

ADAPT_CHUNK = 10  # updates between two looks at the machine's load (an adaptive thread plan)


def default_inductor_options(device: torch.device) -> dict[str, Any]:
    """Inductor settings for the compiled step, each measured in the performance appendix.

    On a CPU: ``cpp_wrapper`` (the compiled graph's kernel calls are made from C++, not a Python
    wrapper); single-threaded elementwise kernels (``cpp.min_chunk_size``) when the thread plan
    applied in this process asks for them (:mod:`iql_tutorial.utils.threads`) or else when OpenMP's
    threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``, or ``GOMP_SPINCOUNT`` <= 1000): waking a
    second thread then costs more than the kernel itself at batch 256, while with spinning threads
    they are slower; and, for an adaptive plan, ``cpp.dynamic_threads``: the kernels ask OpenMP
    for the thread count when they run, so they follow the plan's ``torch.set_num_threads``
    (measured free).
    """
    if device.type != "cpu":
        return {}
    options: dict[str, Any] = {"cpp_wrapper": True}
    plan = threads.applied_plan()
    elementwise = plan.elementwise if plan is not None else None
    if elementwise is None:  # threads that sleep at once (PASSIVE, or a short GOMP_SPINCOUNT)
        elementwise = "one" if threads.spin_count() <= threads.SLEEPING else "all"
    if elementwise == "one":
        options["cpp.min_chunk_size"] = 1 << 20
    if plan is not None and plan.adaptive:  # kernels follow torch.set_num_threads at run time
        options["cpp.dynamic_threads"] = True
    return options


def compiled(agent: IQLAgent, options: dict[str, Any] | None = None) -> Callable[..., dict[str, Tensor]]:
    """``torch.compile`` of ``iql_update`` for ``agent``; a failed first compilation says why."""
    opts = default_inductor_options(agent.device) if options is None else options
    fn = torch.compile(functools.partial(iql_update, agent), fullgraph=True, dynamic=False, options=opts or None)
    state = {"ok": False}

    def call(*args: Any) -> dict[str, Tensor]:
        if state["ok"]:
            return fn(*args)
        try:
            out = fn(*args)
        except Exception as e:
            raise RuntimeError(
                f"Compiling the IQL update failed ({type(e).__name__}: {first_line(e, 300)}). On a CPU, torch.compile needs a "
                "working C++ compiler (g++ or clang; e.g. `apt-get install g++`). Use mode='eager' "
                "(--mode eager) to run the same update without compiling."
            ) from e
        state["ok"] = True
        return out

    return call


class TorchCudaGraph:
    """The capture backend: ``torch.cuda.CUDAGraph`` (tests substitute a CPU stand-in)."""

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()

    def warmup_stream(self) -> Any:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        return side

    def stream(self, side: Any) -> Any:
        return torch.cuda.stream(side)

    def join(self, side: Any) -> None:
        torch.cuda.current_stream().wait_stream(side)

    def get_rng(self) -> Tensor:
        return torch.cuda.get_rng_state()

    def set_rng(self, state: Tensor) -> None:
        torch.cuda.set_rng_state(state)

    def capture(self, fn: Callable[[], dict[str, Tensor]], mutable: list[Tensor]) -> dict[str, Tensor]:
        """Record ``fn``'s kernels (nothing runs, so ``mutable`` keeps its values)."""
        with torch.cuda.graph(self.graph):
            return fn()

    def replay(self) -> None:
        self.graph.replay()


class CudaGraphUpdate:
    """The update captured once and replayed. Everything the graph reads or writes keeps its
    address: the dataset tables, the parameters, the Adam states and the device counter; the
    batch indices are drawn inside the graph with the default (graph-safe) CUDA generator.

    Warm-up runs (which compile the function and let the allocator settle) change the weights,
    so every tensor is saved first and copied back in place; the RNG state is restored too, so
    the first replayed update is the first real update.
    """

    def __init__(self, runner: UpdateRunner, data: Any, backend: Any = None, warmup: int = 3) -> None:
        self.runner, self.backend = runner, backend or TorchCudaGraph()
        agent, fn = runner.agent, runner.fn
        bs, n = agent.config.batch_size, len(data)
        tables = tuple(getattr(data, k) for k in TABLE_KEYS)
        runner.sync_counter()
        m, v, t = adam_state(agent)

        def one() -> dict[str, Tensor]:
            idx = torch.randint(0, n, (bs,), device=data.device)
            return fn(m, v, t, runner.counter, idx, *tables)

        states = (x for g in (m, v, t) for xs in g for x in xs)
        mutable = [*agent.parameters(), *agent.buffers(), runner.counter, *states]
        saved = [x.detach().clone() for x in mutable]
        rng = self.backend.get_rng()
        side = self.backend.warmup_stream()
        with self.backend.stream(side):
            for _ in range(warmup):
                one()
            for x, s in zip(mutable, saved, strict=True):
                x.data.copy_(s)
        self.backend.join(side)
        self.backend.set_rng(rng)
        self.outputs = self.backend.capture(one, mutable)

    def run(self, count: int) -> dict[str, Tensor]:
        self.runner.sync_counter()
        for _ in range(count):
            self.backend.replay()
        self.runner.advance(count)
        return {k: v.clone() for k, v in self.outputs.items()}


class UpdateRunner:
    """Runs an agent's updates in its mode (``agent.mode``), several per Python call.

    Args:
        agent: the learner (``update_order="joint"``).
        data: the transitions (a ``Transitions`` on the agent's device), for ``run``.
        generator: the sampler's generator for the eager and compiled modes (the CUDA graph draws
            with the default CUDA generator, seeded by ``torch.manual_seed``).
        backend: the CUDA-graph capture backend (tests pass a CPU stand-in).
    """

    def __init__(
        self, agent: IQLAgent, data: Any = None, generator: torch.Generator | None = None, backend: Any = None
    ) -> None:
        if agent.config.update_order != "joint":
            raise ValueError("UpdateRunner runs the joint update; update_order='sequential' uses agent.update.")
        self.agent, self.data, self.generator, self.mode = agent, data, generator, agent.mode
        # refuses an optimizer that is not plain Adam, before anything runs
        adam_state(agent)
        self.counter = torch.zeros((), device=agent.device)  # updates done, on the device
        self._counter_host = -1  # the num_updates it holds; -1: not set yet
        if self.mode == "eager":
            self.fn: Callable[..., dict[str, Tensor]] = functools.partial(iql_update, agent)
        else:
            if agent.compiled_update is None:
                agent.compiled_update = compiled(agent)
            self.fn = agent.compiled_update
        self.graph: CudaGraphUpdate | None = None
        if self.mode == "cuda-graph" and data is not None:
            self.graph = CudaGraphUpdate(self, data, backend)

    def sync_counter(self) -> None:
        """Point the device counter at the agent's ``num_updates`` if it moved elsewhere (a fresh
        runner, a loaded checkpoint, an update through another runner)."""
        if self._counter_host != self.agent.num_updates:
            self.counter.fill_(float(self.agent.num_updates))
            self._counter_host = self.agent.num_updates

    def advance(self, n: int) -> None:
        """Account for ``n`` updates done on the device: the host counter and the logged ``lr``."""
        agent = self.agent
        agent.num_updates += n
        self._counter_host = agent.num_updates
        if agent.config.cosine_actor_lr and agent.num_updates > 0:
            # the rate the last update used, for the logs
            lr = float(cosine_lr(agent.config.actor_lr, agent.num_updates - 1, agent.config.total_steps))
            for group in agent.actor_opt.param_groups:
                group["lr"] = lr

    def run_calls(self, calls: Iterable[tuple[Tensor | None, ...]]) -> dict[str, Tensor]:
        """``fn(*adam states, counter, *call)`` for every call; the metrics of the last (not synced)."""
        self.sync_counter()
        m, v, t = adam_state(self.agent)
        out: dict[str, Tensor] = {}
        n = 0
        for call in calls:
            out = self.fn(m, v, t, self.counter, *call)
            n += 1
        self.advance(n)
        return out

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One update on a given batch (eager or compiled; the CUDA graph samples its own)."""
        return self.run_calls([(None, *(batch[k] for k in TABLE_KEYS))])

    def run_sampled(self, count: int) -> dict[str, Tensor]:
        """``count`` updates on uniform batches of ``data``, indices drawn with ``torch.randint``
        (the same draws as ``data.sample``)."""
        data, bs = self.data, self.agent.config.batch_size
        tables = tuple(getattr(data, k) for k in TABLE_KEYS)
        draw = functools.partial(torch.randint, 0, len(data), (bs,), device=data.device, generator=self.generator)
        return self.run_calls((draw(), *tables) for _ in range(count))

    def run(self, count: int) -> dict[str, Tensor]:
        """``count`` updates on uniform batches of ``data``; the metrics of the last one.

        Under an adaptive thread plan (``utils.threads``, the trainer's default on a CPU) the
        updates run in chunks of ``ADAPT_CHUNK``, the thread count looked at before each, so a
        neighbour that starts mid-call costs at most one chunk at the stalled rate."""
        if self.graph is not None:
            return self.graph.run(count)
        plan = threads.applied_plan()
        if plan is None or not plan.adaptive or self.agent.device.type != "cpu":
            return self.run_sampled(count)
        out: dict[str, Tensor] = {}
        for start in range(0, count, ADAPT_CHUNK):
            plan.adjust()
            out = self.run_sampled(min(ADAPT_CHUNK, count - start))
        return out
