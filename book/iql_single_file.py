"""IQL in one file: Implicit Q-Learning (Kostrikov, Nair & Levine 2021,
arXiv:2110.06169), trained offline on a Minari dataset and evaluated in
the dataset's environment.

    python iql_single_file.py --dataset iqlbook/pendulum/medium-replay-v0

Third-party imports: torch, gymnasium and minari (Minari hands out numpy
arrays, which torch reads; numpy itself is not imported). The update is
the book's package's default, the "joint" order: the value, critic and
actor losses come from one forward pass, so the critic target and the
advantage read V from before this step's update. Settings are the
paper's: tau 0.7, beta 3 and returns scaled to a spread of 1000 for
locomotion; tau 0.9, beta 10 and r - 1 for datasets with "maze" in
their id.
"""

from __future__ import annotations

import argparse
import copy
import math

import gymnasium as gym
import minari
import torch
from torch import Tensor, nn

# dataset actions are clipped so that log pi(a|s) stays finite at +-1
ACTION_CLIP = 1.0 - 1e-5
KEYS = ("obs", "act", "rew", "next_obs", "done")


def flat(obs, n: int) -> Tensor:
    """Observations (arrays, or a dict of arrays) as one [n, d] tensor."""
    if isinstance(obs, dict):
        return torch.cat([flat(obs[k], n) for k in sorted(obs)], -1)
    return torch.as_tensor(obs, dtype=torch.float32).reshape(n, -1)


def load(dataset_id: str, reward_norm: str, device: str):
    """Every transition on the device, actions scaled to [-1, 1], and the
    rewards normalised: "locomotion" multiplies by 1000 / (max episode
    return - min episode return), "shift" adds -1 (the paper's mazes)."""
    ds = minari.load_dataset(dataset_id, download=True)
    space = ds.spec.action_space
    low = torch.as_tensor(space.low, dtype=torch.float32)
    high = torch.as_tensor(space.high, dtype=torch.float32)
    cols: dict[str, list[Tensor]] = {k: [] for k in KEYS}
    returns = []
    for ep in ds.iterate_episodes():
        n = len(ep.actions)
        obs = flat(ep.observations, n + 1)
        act = torch.as_tensor(ep.actions, dtype=torch.float32)
        rew = torch.as_tensor(ep.rewards, dtype=torch.float32)
        cols["obs"].append(obs[:-1])
        cols["next_obs"].append(obs[1:])
        act = 2 * (act.reshape(n, -1) - low) / (high - low) - 1
        cols["act"].append(act)
        cols["rew"].append(rew.reshape(n, 1))
        done = torch.as_tensor(ep.terminations, dtype=torch.float32)
        cols["done"].append(done.reshape(n, 1))
        returns.append(rew.double().sum())
    data = {k: torch.cat(v).to(device) for k, v in cols.items()}
    if reward_norm == "locomotion":
        spread = max(returns) - min(returns)
        data["rew"] = data["rew"] * float(1000.0 / spread)
    elif reward_norm == "shift":
        data["rew"] = data["rew"] - 1.0
    return data, ds, (low, high)


def mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> nn.Module:
    """ReLU MLP, orthogonal init: gain sqrt(2) hidden, 1 output, bias 0."""
    dims, layers = (in_dim, *hidden), []
    for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
    layers.append(nn.Linear(dims[-1], out_dim))
    for layer in layers[::2]:
        gain = 1.0 if layer is layers[-1] else math.sqrt(2.0)
        nn.init.orthogonal_(layer.weight, gain=gain)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class Policy(nn.Module):
    """A Gaussian with mean tanh(f(s)) and a state-independent log-std:
    only the mean is squashed, so log pi(a|s) is a plain Gaussian's."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def log_prob(self, obs: Tensor, act: Tensor) -> Tensor:
        mean = torch.tanh(self.net(obs))
        std = self.log_std.clamp(-5.0, 2.0).exp()
        return torch.distributions.Normal(mean, std).log_prob(act).sum(-1)


class IQL:
    """V(s), twin critics Q_i(s, a), their targets, and the policy."""

    def __init__(self, obs_dim: int, act_dim: int, args, device="cpu"):
        hidden = (args.hidden, args.hidden)
        self.value = mlp(obs_dim, 1, hidden).to(device)
        critics = (mlp(obs_dim + act_dim, 1, hidden) for _ in range(2))
        self.critics = nn.ModuleList(critics).to(device)
        self.targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor = Policy(obs_dim, act_dim, hidden).to(device)
        # one Adam each; the three losses never share a parameter
        nets = (self.value, self.critics, self.actor)
        self.opts = [torch.optim.Adam(m.parameters(), args.lr) for m in nets]
        self.args, self.step = args, 0

    def update(self, obs, act, rew, next_obs, done) -> list[Tensor]:
        """One step of Algorithm 1; returns the three losses."""
        a = self.args
        act = act.clamp(-ACTION_CLIP, ACTION_CLIP)
        # the actor's learning rate follows a cosine decay to 0
        t = min(self.step, a.steps) / a.steps
        lr = a.lr * 0.5 * (1.0 + math.cos(math.pi * t))
        self.opts[2].param_groups[0]["lr"] = lr
        sa = torch.cat([obs, act], -1)
        with torch.no_grad():
            # the min over the two target critics, [B, 1]
            q_hat = torch.min(*[q(sa) for q in self.targets])
            next_v = self.value(next_obs)
        # Eq. 5: V regresses on the tau-expectile of q_hat
        v = self.value(obs)
        u = q_hat - v
        weight = torch.where(u < 0, 1.0 - a.expectile, a.expectile)
        value_loss = (weight * u.square()).mean()
        # Eq. 6: each critic regresses on r + gamma (1 - d) V(s')
        y = rew + a.gamma * (1.0 - done) * next_v
        critic_loss = sum((q(sa) - y).square().mean() for q in self.critics)
        # Eq. 7: log pi(a|s) weighted by exp(beta (q_hat - V)), at most 100
        adv = (q_hat - v.detach()).squeeze(-1)
        w = torch.exp((a.beta * adv).clamp(max=math.log(100.0)))
        actor_loss = -(w * self.actor.log_prob(obs, act)).mean()
        # the losses touch disjoint parameters: one backward pass for all
        for opt in self.opts:
            opt.zero_grad()
        (value_loss + critic_loss + actor_loss).backward()
        for opt in self.opts:
            opt.step()
        # Polyak: the target critics follow the critics
        with torch.no_grad():
            critics = self.critics.state_dict()
            for name, p_hat in self.targets.state_dict().items():
                p_hat.lerp_(critics[name], a.tau_target)
        self.step += 1
        return [
            value_loss.detach(),
            critic_loss.detach(),
            actor_loss.detach(),
        ]


@torch.no_grad()
def evaluate(agent: IQL, ds, bounds, episodes: int, seed: int) -> Tensor:
    """Normalized scores, 100 (R - R_random) / (R_ref - R_random), of the
    policy's mean action (the paper's protocol), one per episode."""
    make = lambda: ds.recover_environment(eval_env=True)
    envs = gym.vector.SyncVectorEnv([make for _ in range(episodes)])
    low, high = bounds
    device = next(agent.actor.parameters()).device
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    returns = torch.zeros(episodes, dtype=torch.float64)
    done = torch.zeros(episodes, dtype=torch.bool)
    while not done.all():
        o = flat(obs, episodes).to(device)
        mean = torch.tanh(agent.actor.net(o)).cpu()
        act = low + (mean + 1.0) * 0.5 * (high - low)
        obs, r, term, trunc, _ = envs.step(act.numpy())
        returns += torch.where(done, 0.0, torch.as_tensor(r))
        done |= torch.as_tensor(term) | torch.as_tensor(trunc)
    envs.close()
    meta = ds.storage.metadata
    lo, hi = meta["ref_min_score"], meta["ref_max_score"]
    return 100.0 * (returns - lo) / (hi - lo)


def train(args) -> tuple[IQL, Tensor]:
    """Train for args.steps updates; returns the agent and its scores."""
    torch.manual_seed(args.seed)
    maze = "maze" in args.dataset.lower()
    norm = args.reward_norm or ("shift" if maze else "locomotion")
    data, ds, bounds = load(args.dataset, norm, args.device)
    obs_dim, act_dim = data["obs"].shape[1], data["act"].shape[1]
    agent = IQL(obs_dim, act_dim, args, args.device)
    sampler = torch.Generator(args.device).manual_seed(args.seed)
    n, scores = len(data["obs"]), torch.zeros(0)
    for step in range(1, args.steps + 1):
        size = (args.batch_size,)
        idx = torch.randint(n, size, generator=sampler, device=args.device)
        losses = agent.update(*(data[k][idx] for k in KEYS))
        if step % args.eval_every and step < args.steps:
            continue
        # the only host syncs: at the evaluations
        v, q, pi = (float(x) for x in losses)
        scores = evaluate(agent, ds, bounds, args.eval_episodes, args.seed)
        print(
            f"step {step:>8,}  losses V {v:.3g} Q {q:.3g} pi {pi:.3g}"
            f"  score {scores.mean():.1f} +- {scores.std():.1f}"
        )
    return agent, scores


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="iqlbook/pendulum/medium-replay-v0")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--expectile", type=float, help="tau (0.7; mazes 0.9)")
    p.add_argument("--beta", type=float, help="inverse temperature (3; 10)")
    p.add_argument("--reward-norm", choices=("locomotion", "shift", "none"))
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau-target", type=float, default=0.005)
    cuda = torch.cuda.is_available()
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    args = p.parse_args(argv)
    maze = "maze" in args.dataset.lower()
    if args.expectile is None:
        args.expectile = 0.9 if maze else 0.7
    if args.beta is None:
        args.beta = 10.0 if maze else 3.0
    return args


if __name__ == "__main__":
    train(parse_args())
