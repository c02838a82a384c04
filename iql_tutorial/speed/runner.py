"""The GPU fast path: the whole IQL update captured once as a CUDA graph and replayed.

A plain PyTorch step launches a few hundred small kernels, and on a GPU the Python and launch
overhead of each dwarfs its arithmetic at batch 256. Capturing the step (sampling, forward,
backward, the three Adam steps, the actor's learning-rate schedule and the Polyak update) as
one CUDA graph turns it into a single launch. What that needs, and how it is done here:

- static tensors: the dataset, the sampled indices, the gradients (zeroed, never set to None)
  and the optimizer states keep their addresses from one replay to the next;
- capturable, fused Adam with the learning rate as a device tensor, so the cosine schedule
  runs on the device from a step counter that also lives there;
- the Polyak period as a device-side mask (no Python ``if`` on the step number);
- sampling with ``torch.randint`` on the default CUDA generator, which graphs support;
- no host syncs: metrics are static output tensors, read only at logging intervals.

``StepRunner`` gives one interface to all paths: eager or compiled (``IQLAgent(compile=True)``)
updates in a loop, the whole update compiled as one function (``whole_step=True``, see
``iql_tutorial.whole_step``; the fastest CPU path), or graph replays (``cuda_graph=True``).
``run(n)`` does ``n`` updates in one Python call. The graph path uses the ``"joint"`` update order.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor

from iql_tutorial import losses
from iql_tutorial.agent import ACTION_CLIP, IQLAgent, cosine_lr_tensor
from iql_tutorial.data.transitions import Transitions
from iql_tutorial.whole_step import WholeStep


def _device_adam(opt: torch.optim.Adam, lr: float | Tensor, capturable: bool) -> torch.optim.Adam:
    """A fused Adam over the same parameters with the same state, whose learning rate may be a
    device tensor; ``capturable`` keeps its step counters on the device (for CUDA graphs)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    new = torch.optim.Adam(params, lr=lr, fused=True, capturable=capturable)
    state = opt.state_dict()
    for g in state["param_groups"]:
        g["lr"] = lr
        g["capturable"] = capturable
    new.load_state_dict(state)
    for g in new.param_groups:  # load_state_dict copies the groups: point them at *this* tensor
        g["lr"] = lr
    return new


class StepRunner:
    """Runs IQL updates on device-resident data, several per Python call.

    Args:
        agent: the learner (its ``compile`` flag chooses eager or compiled losses).
        data: the transitions, on the agent's device.
        generator: the sampler's generator (eager/compiled paths; the graph path samples with
            the default CUDA generator, seeded by ``torch.manual_seed``).
        cuda_graph: capture the whole update as a CUDA graph (CUDA only).
        bf16: run the forward and backward passes under bfloat16 autocast (graph path only);
            the losses change by the rounding of bfloat16, measured in the book.
        whole_step: run every update as one compiled function (``WholeStep``): forward,
            backward, the three Adam steps and Polyak in one graph (joint update order).
    """

    def __init__(
        self,
        agent: IQLAgent,
        data: Transitions,
        generator: torch.Generator | None = None,
        cuda_graph: bool = False,
        bf16: bool = False,
        whole_step: bool = False,
    ) -> None:
        self.agent, self.data, self.generator = agent, data, generator
        self.cuda_graph, self.bf16 = cuda_graph, bf16
        self.graph: torch.cuda.CUDAGraph | None = None
        self.whole: WholeStep | None = None
        if whole_step and cuda_graph:
            raise ValueError("Choose one of whole_step=True (compiled step) and cuda_graph=True (captured step).")
        if whole_step:
            self.whole = WholeStep(agent)
        if cuda_graph:
            if agent.device.type != "cuda":
                raise ValueError(
                    "cuda_graph=True needs the agent on a CUDA device; use the eager or compiled path on the CPU."
                )
            if agent.config.update_order != "joint":
                raise ValueError("cuda_graph=True captures the joint update order; set update_order='joint'.")
            self._build_graph()
        elif bf16:
            raise ValueError("bf16=True is part of the CUDA-graph path; pass cuda_graph=True as well.")

    def run(self, num_steps: int) -> dict[str, Tensor]:
        """``num_steps`` updates; the metrics of the last one (tensors, not synced)."""
        if self.whole is not None:
            return self.whole.run_sampled(self.data, num_steps, self.generator)
        if self.graph is None:
            return self.agent.train_steps(self.data, num_steps, self.generator)
        for _ in range(num_steps):
            self.graph.replay()
        self.agent.num_updates += num_steps
        return {k: v.clone() for k, v in self.static_metrics.items()}

    # ------------------------------------------------------------------ graph path
    def _graph_step(self) -> dict[str, Tensor]:
        agent, cfg, data = self.agent, self.agent.config, self.data
        idx = torch.randint(0, len(data), (cfg.batch_size,), device=data.device)
        b = data.batch(idx)
        act = b["actions"].clamp(-ACTION_CLIP, ACTION_CLIP) if cfg.clip_actions else b["actions"]
        if cfg.cosine_actor_lr:
            self.actor_lr.copy_(cosine_lr_tensor(cfg.actor_lr, self.step, cfg.total_steps))
        for opt in (agent.value_opt, agent.critic_opt, agent.actor_opt):
            opt.zero_grad(set_to_none=False)  # gradients must keep their addresses
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False) if self.bf16 else nullcontext()
        with autocast:
            total, metrics, _ = agent._joint_losses(b["obs"], act, b["rewards"], b["next_obs"], b["terminals"])
        total.backward()
        agent.value_opt.step()
        agent.critic_opt.step()
        agent.actor_opt.step()
        self.step.add_(1)
        losses.polyak_update_every(
            agent._target_params, agent._critic_params, cfg.tau_target, self.step, cfg.target_update_period
        )
        return metrics

    def _snapshot(self) -> list[Tensor]:
        agent = self.agent
        tensors = [*agent.parameters(), *agent.buffers()]
        for opt in (agent.value_opt, agent.critic_opt, agent.actor_opt):
            for st in opt.state.values():
                tensors += [v for v in st.values() if isinstance(v, Tensor)]
        return tensors

    def _prepare_device_step(self, capturable: bool) -> None:
        """Step counter and actor learning rate as device tensors, optimizers that read them."""
        agent, dev = self.agent, self.agent.device
        self.step = torch.tensor(float(agent.num_updates), device=dev)
        self.actor_lr = torch.tensor(agent.config.actor_lr, device=dev)
        agent.actor_opt = _device_adam(agent.actor_opt, self.actor_lr, capturable)
        agent.critic_opt = _device_adam(agent.critic_opt, agent.config.critic_lr, capturable)
        agent.value_opt = _device_adam(agent.value_opt, agent.config.value_lr, capturable)

    def _build_graph(self, warmup: int = 3) -> None:
        agent = self.agent
        self._prepare_device_step(capturable=True)
        # Warm-up on a side stream creates the optimizer states and any compiled kernels; it
        # changes the weights, so everything is saved first and copied back in place (the
        # addresses the graph will use must not change).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._graph_step()  # creates gradients and optimizer states
            saved = [t.detach().clone() for t in self._snapshot()]
            rng = torch.cuda.get_rng_state()
            for _ in range(warmup):
                self._graph_step()
            for t, s in zip(self._snapshot(), saved):
                t.data.copy_(s)
            self.step.fill_(float(agent.num_updates + 1))
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.set_rng_state(rng)
        agent.num_updates += 1  # the first (creating) step above was a real update
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_metrics = self._graph_step()
