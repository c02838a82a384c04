"""How the one IQL update (:func:`iql_tutorial.core.update.iql_update`) runs: three ways.

- ``"eager"``: call the function as it is (Python runs every kernel).
- ``"compile"``: ``torch.compile(iql_update, fullgraph=True)``: Inductor fuses the elementwise
  work of the forward pass, the backward pass, the three Adams and Polyak into a few dozen kernels
  around the matmuls. The fastest CPU path (numbers in the performance appendix).
- ``"cuda-graph"``: the compiled function, with the batch indices drawn inside it, captured once
  as a CUDA graph and replayed: one launch per update instead of a few hundred. Needs CUDA.

:class:`UpdateRunner` calls it: it is given the networks, the config and the optimizers (an
``IQLAgent`` makes one in ``IQLAgent.runner``), hands the function their Adam states and a device
counter of updates, and returns how many updates it ran; the agent keeps its host counter
``num_updates`` and the optimizers' logged learning rates. ``resolve_mode("auto", ...)`` picks the
fastest mode the machine supports and says why when it falls back.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from iql_tutorial.core.adam import adam_state
from iql_tutorial.core.config import IQLConfig
from iql_tutorial.core.update import TABLE_KEYS, Networks, iql_update
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

MODES = ("auto", "eager", "compile", "cuda-graph")
ADAPT_CHUNK = 10  # updates between two looks at the machine's load (an adaptive thread plan)
UpdateFn = Callable[..., dict[str, Tensor]]


def have_cpp_compiler() -> bool:
    """Whether Inductor's CPU backend can find a C++ compiler."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def resolve_mode(mode: str, device: torch.device | str, update_order: str = "joint") -> tuple[str, str | None]:
    """The mode to run and a one-line note when ``"auto"`` had to settle for a slower one.

    ``"auto"``: ``"cuda-graph"`` on a CUDA device, ``"compile"`` on a CPU with a C++ compiler,
    ``"eager"`` otherwise and for the sequential update order.
    """
    device = torch.device(device)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}.")
    if mode == "auto":
        if update_order != "joint":
            return "eager", "update_order='sequential' runs eagerly (three backward passes by design)."
        if device.type == "cuda":
            return "cuda-graph", None
        if not have_cpp_compiler():
            return "eager", "no C++ compiler found (g++/clang++): using the eager update; install one for ~2x."
        return "compile", None
    if mode != "eager" and update_order != "joint":
        raise ValueError(
            f"mode={mode!r} runs the joint update order's function; update_order='sequential' runs "
            "eagerly only. Use mode='eager' (or 'auto'), or update_order='joint'."
        )
    if mode == "cuda-graph" and device.type != "cuda":
        raise ValueError(f"mode='cuda-graph' needs a CUDA device, not {device}; use mode='compile' on a CPU.")
    return mode, None


def default_inductor_options(device: torch.device) -> dict[str, Any]:
    """Inductor settings for the compiled update, each measured in the performance appendix.

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


def compiled(nets: Networks, cfg: IQLConfig, device: torch.device, options: dict[str, Any] | None = None) -> UpdateFn:
    """``torch.compile`` of ``iql_update`` for these networks; a failed first compilation says why."""
    opts = default_inductor_options(device) if options is None else options
    fn = torch.compile(functools.partial(iql_update, nets, cfg), fullgraph=True, dynamic=False, options=opts or None)
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

    def __init__(self, runner: UpdateRunner, data: Any, done: int, backend: Any = None, warmup: int = 3) -> None:
        self.runner, self.backend = runner, backend or TorchCudaGraph()
        fn, bs, n = runner.fn, runner.cfg.batch_size, len(data)
        tables = tuple(getattr(data, k) for k in TABLE_KEYS)
        runner.sync_counter(done)
        m, v, t = runner.adam_state()

        def one() -> dict[str, Tensor]:
            idx = torch.randint(0, n, (bs,), device=data.device)
            return fn(m, v, t, runner.counter, idx, *tables)

        nets = [x for x in runner.nets if isinstance(x, torch.nn.Module)]
        weights = [x for net in nets for x in (*net.parameters(), *net.buffers())]
        states = (x for g in (m, v, t) for xs in g for x in xs)
        mutable = [*weights, runner.counter, *states]
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

    def run(self, count: int, done: int) -> dict[str, Tensor]:
        self.runner.sync_counter(done)
        for _ in range(count):
            self.backend.replay()
        self.runner.advance(count)
        return {k: v.clone() for k, v in self.outputs.items()}


class UpdateRunner:
    """Runs the joint update (``iql_update``) in a mode, several updates per Python call.

    Args:
        nets: the networks (``IQLAgent.networks()``).
        cfg: the hyperparameters (``update_order="joint"``).
        optimizers: the value network's, the critics' and the actor's ``torch.optim.Adam``, whose
            state tensors the update steps.
        mode: ``"eager"``, ``"compile"`` or ``"cuda-graph"`` (``resolve_mode``).
        device: where the networks live.
        data: the transitions (a ``Transitions`` on the device), for ``run``.
        generator: the sampler's generator for the eager and compiled modes (the CUDA graph draws
            with the default CUDA generator, seeded by ``torch.manual_seed``).
        fn: a compiled update of these networks to reuse (``compiled``); made here when None.
        backend: the CUDA-graph capture backend (tests pass a CPU stand-in).
        done: the updates done so far (where a CUDA graph's counter starts).

    ``update`` and ``run`` take ``done``, the updates done before (the schedule and the Polyak
    period read it), and return the metrics of the last update.
    """

    def __init__(
        self,
        nets: Networks,
        cfg: IQLConfig,
        optimizers: Sequence[torch.optim.Optimizer],
        mode: str,
        device: torch.device,
        data: Any = None,
        generator: torch.Generator | None = None,
        fn: UpdateFn | None = None,
        backend: Any = None,
        done: int = 0,
    ) -> None:
        if cfg.update_order != "joint":
            raise ValueError("UpdateRunner runs the joint update; update_order='sequential' uses agent.update.")
        self.nets, self.cfg, self.optimizers, self.mode = nets, cfg, tuple(optimizers), mode
        self.data, self.generator = data, generator
        self.adam_state()  # refuses an optimizer that is not plain Adam, before anything runs
        self.counter = torch.zeros((), device=device)  # updates done, on the device
        self._counter_host = -1  # the count it holds; -1: not set yet
        if mode == "eager":
            self.fn: UpdateFn = functools.partial(iql_update, nets, cfg)
        else:
            self.fn = fn if fn is not None else compiled(nets, cfg, device)
        self.graph: CudaGraphUpdate | None = None
        if mode == "cuda-graph" and data is not None:
            self.graph = CudaGraphUpdate(self, data, done, backend)

    def adam_state(self) -> tuple[list[list[Tensor]], list[list[Tensor]], list[list[Tensor]]]:
        """The Adam states of the three networks (read again before every run: loading a
        checkpoint replaces the optimizers' state tensors)."""
        return adam_state(self.nets.trained(), self.optimizers)

    def sync_counter(self, done: int) -> None:
        """Point the device counter at ``done`` if it moved elsewhere (a fresh runner, a loaded
        checkpoint, an update through another runner)."""
        if self._counter_host != done:
            self.counter.fill_(float(done))
            self._counter_host = done

    def advance(self, n: int) -> None:
        """Account for ``n`` updates done on the device."""
        self._counter_host += n

    def run_calls(self, done: int, calls: Iterable[tuple[Tensor | None, ...]]) -> dict[str, Tensor]:
        """``fn(*adam states, counter, *call)`` for every call; the metrics of the last (not synced)."""
        self.sync_counter(done)
        m, v, t = self.adam_state()
        out: dict[str, Tensor] = {}
        n = 0
        for call in calls:
            out = self.fn(m, v, t, self.counter, *call)
            n += 1
        self.advance(n)
        return out

    def update(self, batch: dict[str, Tensor], done: int) -> dict[str, Tensor]:
        """One update on a given batch (eager or compiled; the CUDA graph samples its own)."""
        return self.run_calls(done, [(None, *(batch[k] for k in TABLE_KEYS))])

    def run_sampled(self, count: int, done: int) -> dict[str, Tensor]:
        """``count`` updates on uniform batches of ``data``, indices drawn with ``torch.randint``
        (the same draws as ``data.sample``)."""
        data, bs = self.data, self.cfg.batch_size
        tables = tuple(getattr(data, k) for k in TABLE_KEYS)
        draw = functools.partial(torch.randint, 0, len(data), (bs,), device=data.device, generator=self.generator)
        return self.run_calls(done, ((draw(), *tables) for _ in range(count)))

    def run(self, count: int, done: int) -> dict[str, Tensor]:
        """``count`` updates on uniform batches of ``data``; the metrics of the last one.

        Under an adaptive thread plan (``utils.threads``, the trainer's default on a CPU) the
        updates run in chunks of ``ADAPT_CHUNK``, the thread count looked at before each, so a
        neighbour that starts mid-call costs at most one chunk at the stalled rate."""
        if self.graph is not None:
            return self.graph.run(count, done)
        plan = threads.applied_plan()
        if plan is None or not plan.adaptive or self.counter.device.type != "cpu":
            return self.run_sampled(count, done)
        out: dict[str, Tensor] = {}
        for start in range(0, count, ADAPT_CHUNK):
            plan.adjust()
            out = self.run_sampled(min(ADAPT_CHUNK, count - start), done + start)
        return out
