"""Experiment (not part of the package): two levers for the CPU step that were measured and not kept.

1. **The step split in two halves on two threads.** In the joint update order every gradient is
   taken at the parameters the step started from, so one step falls into two halves that share
   nothing but the batch: (a) V(s') forward and the critics' loss, gradient and Adam; (b) the
   target critics' min, V(s) and the actor: their losses, gradients and the actor's Adam. V's Adam
   and Polyak come after both (half (a) reads V). Each half is compiled on its own and runs on one
   intra-op thread; "parallel" runs (a) on a worker thread while this thread runs (b) (compiled
   code releases the GIL), "sequential" runs them one after the other.
2. **Dynamo's guards skipped** (``torch.compiler.set_stance(skip_guard_eval_unsafe=True)``) around
   the package's compiled step.

Each group (the package's step; the split) runs in processes of its own, fresh ones in alternating
order, its contenders alternating inside (a split's worker thread would otherwise share the
process's OpenMP threads with the package's step); the medians over all rounds:

    python tools/exp_split_step.py --out data/results/bench-cpu-split.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core import losses
from iql_tutorial.core.step import ACTION_CLIP, adam_update_, cosine_lr_tensor
from iql_tutorial.speed.bench import synthetic_transitions
from iql_tutorial.speed.runner import compiled

OPTS = {"cpp_wrapper": True}


class _CriticHalf(nn.Module):
    def __init__(self, agent: IQLAgent) -> None:
        super().__init__()
        self.critic = agent.critic
        object.__setattr__(self, "agent", agent)  # not a submodule: its parameters stay its own

    def forward(self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, term: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.agent.config
        with torch.no_grad():
            y = losses.td_target(rew, self.agent.value(next_obs), term, cfg.gamma)
        q = self.critic(obs, act)
        return losses.critic_loss_per_sample(q, y).mean(), q.detach()


class _ValueActorHalf(nn.Module):
    def __init__(self, agent: IQLAgent) -> None:
        super().__init__()
        self.value, self.actor = agent.value, agent.actor
        object.__setattr__(self, "agent", agent)

    def forward(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        a, cfg = self.agent, self.agent.config
        target_q = a.target_q_min(obs, act)
        v = self.value(obs)
        v_loss = losses.value_loss(target_q, v, cfg.expectile, a.reward_weights, cfg.sign_aware_expectile)
        w = a.policy_weights(target_q, v.detach())
        return v_loss + losses.awr_loss(w, self.actor.log_prob(obs, act)), v.detach()


def split_step(agent: IQLAgent, data, generator: torch.Generator):
    """The halves, compiled, and ``one(parallel)``: one update."""
    cfg, step = agent.config, agent.step
    m, v, t = step.states()  # value, critic, actor
    counter = step.counter
    crit, va = _CriticHalf(agent), _ValueActorHalf(agent)
    crit_names = [f"critic.{n}" for n, _ in agent.critic.named_parameters()]
    v_names = [f"value.{n}" for n, _ in agent.value.named_parameters()]
    a_names = [f"actor.{n}" for n, _ in agent.actor.named_parameters()]
    tables = (data.obs, data.actions, data.rewards, data.next_obs, data.terminals)

    def half_critic(idx: Tensor, obs: Tensor, act: Tensor, rew: Tensor, nxt: Tensor, term: Tensor) -> Tensor:
        batch = (obs[idx], act[idx].clamp(-ACTION_CLIP, ACTION_CLIP), rew[idx], nxt[idx], term[idx])
        ps = list(agent.critic.parameters())
        g, q = grad(lambda tr, *b: functional_call(crit, tr, b, strict=False), has_aux=True)(
            {n: p.detach() for n, p in zip(crit_names, ps, strict=True)}, *batch
        )
        with torch.no_grad():
            adam_update_(ps, [g[n] for n in crit_names], m[1], v[1], t[1], cfg.critic_lr, 0.9, 0.999, 1e-8)
        return q

    def half_value_actor(idx: Tensor, obs: Tensor, act: Tensor, counter: Tensor) -> list[Tensor]:
        batch = (obs[idx], act[idx].clamp(-ACTION_CLIP, ACTION_CLIP))
        vp, ap = list(agent.value.parameters()), list(agent.actor.parameters())
        trainable = {n: p.detach() for n, p in zip(v_names + a_names, vp + ap, strict=True)}
        g, _ = grad(lambda tr, *b: functional_call(va, tr, b, strict=False), has_aux=True)(trainable, *batch)
        with torch.no_grad():
            lr = cosine_lr_tensor(cfg.actor_lr, counter, cfg.total_steps)
            adam_update_(ap, [g[n] for n in a_names], m[2], v[2], t[2], lr, 0.9, 0.999, 1e-8)
        return [g[n] for n in v_names]

    def finish(value_grads: list[Tensor], counter: Tensor) -> None:
        with torch.no_grad():
            adam_update_(list(agent.value.parameters()), value_grads, m[0], v[0], t[0], cfg.value_lr, 0.9, 0.999, 1e-8)
            counter.add_(1.0)
            losses.polyak_update_every(
                list(agent.target_critic.parameters()), list(agent.critic.parameters()), cfg.tau_target, counter,
                cfg.target_update_period,
            )  # fmt: skip

    a_fn, b_fn, f_fn = (torch.compile(f, fullgraph=True, dynamic=False, options=OPTS)
                        for f in (half_critic, half_value_actor, finish))  # fmt: skip
    pool = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,))  # its half on one thread

    def one(parallel: bool) -> None:
        idx = torch.randint(0, len(data), (cfg.batch_size,), generator=generator)
        if parallel:
            fut = pool.submit(a_fn, idx, *tables)
            vg = b_fn(idx, tables[0], tables[1], counter)
            fut.result()
        else:
            a_fn(idx, *tables)
            vg = b_fn(idx, tables[0], tables[1], counter)
        f_fn(vg, counter)

    return one


def measure(group: str, rounds: int, updates: int) -> dict[str, list[float]]:
    """One group's contenders in this process, alternating; their rates per round."""
    full = torch.get_num_threads()
    data = synthetic_transitions(1_000_000, "cpu")
    cfg = IQLConfig(hidden_dims=(256, 256), num_critics=2, batch_size=256)
    torch.manual_seed(0)
    contenders: dict[str, tuple[int, Any]] = {}  # name: (intra-op threads, run n updates)
    if group == "package":
        pkg = IQLAgent(17, 6, cfg, mode="compile")
        # the trainer's options on a CPU (its adaptive plan): the kernels follow set_num_threads
        pkg.step._compiled = compiled(pkg.step, {**OPTS, "cpp.dynamic_threads": True})
        runner = pkg.runner(data, torch.Generator().manual_seed(1))

        def skipping(n: int) -> None:
            runner.run(1)  # guards checked once per call of the runner
            with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                runner.run(n - 1)

        s_ = "s" if full > 1 else ""
        contenders[f"package step, {full} thread{s_} (the default on an idle machine)"] = (full, runner.run)
        contenders["package step, 1 thread"] = (1, runner.run)
        contenders[f"package step, {full} thread{s_}, Dynamo's guards skipped"] = (full, skipping)
    else:
        torch.set_num_threads(1)
        split = split_step(IQLAgent(17, 6, cfg), data, torch.Generator().manual_seed(1))
        contenders["split halves, one after the other, 1 thread"] = (1, lambda n: [split(False) for _ in range(n)])
        contenders["split halves on two threads, 1 intra-op thread each"] = (
            1, lambda n: [split(True) for _ in range(n)],
        )  # fmt: skip
    for threads, run in contenders.values():  # compile and warm up
        torch.set_num_threads(threads)
        run(50)
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            threads, run = contenders[name]
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            run(updates)
            rates[name].append(updates / (time.perf_counter() - t0))
    return rates


def check_split() -> float:
    """The halves compute the package's update: the largest parameter difference after 5 updates."""
    data = synthetic_transitions(10_000, "cpu")
    cfg = IQLConfig(hidden_dims=(256, 256), num_critics=2, batch_size=256)
    torch.manual_seed(0)
    ref = IQLAgent(17, 6, cfg)
    torch.manual_seed(0)
    check = IQLAgent(17, 6, cfg)
    ref.step.run_sampled(data, 5, torch.Generator().manual_seed(3))
    one = split_step(check, data, torch.Generator().manual_seed(3))
    for i in range(5):
        one(i % 2 == 1)
    pairs = zip(ref.state_dict().values(), check.state_dict().values(), strict=True)
    return max((a - b).abs().max().item() for a, b in pairs if a is not None)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="processes per group, alternating")
    p.add_argument("--inner", type=int, default=3, help="alternating rounds inside each process")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--out", default=None)
    p.add_argument("--group", choices=("package", "split"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.group:  # a worker: print its rates as JSON
        print(json.dumps(measure(args.group, args.inner, args.updates)))
        return
    worst = check_split()
    if worst > 1e-4:
        raise SystemExit(f"the split step differs from the package's by {worst}")
    rates: dict[str, list[float]] = {}
    groups = ["package", "split"]
    for r in range(args.rounds):  # a fresh process per group and round, the order alternating
        for group in groups[r % 2 :] + groups[: r % 2]:
            cmd = [sys.executable, __file__, "--group", group, "--inner", str(args.inner),
                   "--updates", str(args.updates)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            for name, xs in json.loads(out.strip().splitlines()[-1]).items():
                rates.setdefault(name, []).extend(xs)
    given = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# python tools/exp_split_step.py{(' ' + given) if given else ''}  ({time.strftime('%Y-%m-%d %H:%M')})",
        f"torch {torch.__version__}, {torch.get_num_threads()} cores; HalfCheetah shapes, batch 256, 256x256, "
        f"2 critics; {args.rounds} processes per group (package, split), alternating, each timing "
        f"{args.inner} alternating rounds of {args.updates} updates per contender",
        f"the split halves equal the package's update: largest parameter difference after 5 updates {worst:.1e}",
    ]
    base = statistics.median(next(iter(rates.values())))
    for name, xs in rates.items():
        med = statistics.median(xs)
        lines.append(
            f"{name}: {med:.1f} updates/s (median of {len(xs)}; min {min(xs):.1f}, max {max(xs):.1f}; "
            f"{med / base:.2f} of the default)"
        )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
