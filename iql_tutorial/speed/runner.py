"""The one IQL step (:mod:`iql_tutorial.core.step`) run three ways; each a thin wrapper.

- ``"eager"``: call the step function as it is (Python runs every kernel).
- ``"compile"``: ``torch.compile(step.fn, fullgraph=True)``: Inductor fuses the elementwise work of
  the forward pass, the backward pass, the three Adams and Polyak into a few dozen kernels around
  the matmuls. The fastest CPU path (numbers in the performance appendix).
- ``"cuda-graph"``: the compiled function, with the batch indices drawn inside it, captured once
  as a CUDA graph and replayed: one launch per update instead of a few hundred. Needs CUDA.

``resolve_mode("auto", ...)`` (in ``core.step``: the agent calls it) picks the fastest the machine
supports and says why when it falls back. A mode the update order cannot honour (the sequential
order has three backward passes by design and runs eagerly) is refused with an error, never
silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from iql_tutorial.core.step import MODES, IQLStep, have_cpp_compiler, resolve_mode
from iql_tutorial.speed import threads

__all__ = ["MODES", "CudaGraphStep", "StepRunner", "TorchCudaGraph", "compiled", "default_inductor_options",
           "have_cpp_compiler", "resolve_mode"]  # fmt: skip

ADAPT_CHUNK = 10  # updates between two looks at the machine's load (an adaptive thread plan)


def default_inductor_options(device: torch.device) -> dict[str, Any]:
    """Inductor settings for the compiled step, each measured in the performance appendix.

    On a CPU: ``cpp_wrapper`` (the compiled graph's kernel calls are made from C++, not a Python
    wrapper); single-threaded elementwise kernels (``cpp.min_chunk_size``) when the thread plan
    applied in this process asks for them (:mod:`iql_tutorial.speed.threads`) or else when OpenMP's
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


def compiled(step: IQLStep, options: dict[str, Any] | None = None) -> Callable[..., dict[str, Tensor]]:
    """``torch.compile`` of the step's pure function; a failed first compilation says why."""
    opts = default_inductor_options(step.agent.device) if options is None else options
    fn = torch.compile(step.fn, fullgraph=True, dynamic=False, options=opts or None)
    state = {"ok": False}

    def call(*args: Any) -> dict[str, Tensor]:
        if state["ok"]:
            return fn(*args)
        try:
            out = fn(*args)
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise RuntimeError(
                f"Compiling the IQL step failed ({type(e).__name__}: {first}). On a CPU, torch.compile needs a "
                "working C++ compiler (g++ or clang; e.g. `apt-get install g++`). Use mode='eager' "
                "(--mode eager) to run the same step without compiling."
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


class CudaGraphStep:
    """The step captured once and replayed. Everything the graph reads or writes keeps its
    address: the dataset tables, the parameters, the Adam states and the device counter; the
    batch indices are drawn inside the graph with the default (graph-safe) CUDA generator.

    Warm-up runs (which compile the function and let the allocator settle) change the weights,
    so every tensor is saved first and copied back in place; the RNG state is restored too, so
    the first replayed update is the first real update.
    """

    def __init__(self, step: IQLStep, fn: Callable[..., dict[str, Tensor]], data: Any, backend: Any = None,
                 warmup: int = 3) -> None:  # fmt: skip
        self.step, self.backend = step, backend or TorchCudaGraph()
        agent = step.agent
        bs, n = agent.config.batch_size, len(data)
        tables = tuple(getattr(data, k) for k in ("obs", "actions", "rewards", "next_obs", "terminals"))
        step.sync_counter()
        m, v, t = step.states()

        def one() -> dict[str, Tensor]:
            idx = torch.randint(0, n, (bs,), device=data.device)
            return fn(m, v, t, step.counter, idx, *tables)

        mutable = [*agent.parameters(), *agent.buffers(), step.counter, *(x for g in (m, v, t) for xs in g for x in xs)]
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

    def run(self, num_steps: int) -> dict[str, Tensor]:
        self.step.sync_counter()
        for _ in range(num_steps):
            self.backend.replay()
        self.step.advance(num_steps)
        return {k: v.clone() for k, v in self.outputs.items()}


class StepRunner:
    """Runs an agent's updates in its mode (``agent.mode``), several per Python call.

    Args:
        agent: the learner.
        data: the transitions (a ``Transitions`` on the agent's device), for ``run``.
        generator: the sampler's generator for the eager and compiled modes (the CUDA graph draws
            with the default CUDA generator, seeded by ``torch.manual_seed``).
        backend: the CUDA-graph capture backend (tests pass a CPU stand-in).
    """

    def __init__(self, agent: Any, data: Any = None, generator: torch.Generator | None = None,
                 backend: Any = None) -> None:  # fmt: skip
        if agent.step is None:
            raise ValueError("StepRunner runs the joint update's step; update_order='sequential' uses agent.update.")
        self.agent, self.data, self.generator, self.mode = agent, data, generator, agent.mode
        step = agent.step
        if self.mode == "eager":
            self.fn: Callable[..., dict[str, Tensor]] = step.fn
        else:
            if step.compiled_fn is None:
                step.compiled_fn = compiled(step)
            self.fn = step.compiled_fn
        self.graph: CudaGraphStep | None = None
        if self.mode == "cuda-graph" and data is not None:
            self.graph = CudaGraphStep(step, self.fn, data, backend)

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One update on a given batch (eager or compiled; the CUDA graph samples its own)."""
        return self.agent.step.update(batch, self.fn)

    def run(self, num_steps: int) -> dict[str, Tensor]:
        """``num_steps`` updates on uniform batches of ``data``; the metrics of the last one.

        Under an adaptive thread plan (``speed.threads``, the trainer's default on a CPU) the
        updates run in chunks of ``ADAPT_CHUNK``, the thread count looked at before each, so a
        neighbour that starts mid-call costs at most one chunk at the stalled rate."""
        if self.graph is not None:
            return self.graph.run(num_steps)
        plan = threads.applied_plan()
        if plan is None or not plan.adaptive or self.agent.device.type != "cpu":
            return self.agent.step.run_sampled(self.data, num_steps, self.generator, self.fn)
        out: dict[str, Tensor] = {}
        for start in range(0, num_steps, ADAPT_CHUNK):
            plan.adjust()
            out = self.agent.step.run_sampled(self.data, min(ADAPT_CHUNK, num_steps - start), self.generator, self.fn)
        return out
