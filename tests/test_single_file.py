"""IQL in one file (``book/iql_single_file.py``, shown in chapter 5) against the package.

The single file imports nothing from the package, so it is an independent reference in the
pattern of ``core/plain.py``: the same data, the same initial weights and the same batches must
give the package's losses and weights to float32 rounding (the package's Adam is fused and its
critics are one batched module, so sums run in another order), and trained the same way it must
score in the package's range on a small dataset.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from helpers import REPO, minari_path

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core.plain import copy_agent_weights
from iql_tutorial.data.loader import load_dataset
from iql_tutorial.runs.train import TrainConfig, preset_config, train

PATH = REPO / "book" / "iql_single_file.py"
DATASET = "iqlbook/pendulum/medium-replay-v0"
# Pendulum expert data: 3,000 steps of networks of 64 learn it (about 90 of 100 for both, seed 0);
# medium-replay at such budgets stays near its data's mean (-7), too close to nothing learned
LEARN = "iqlbook/pendulum/expert-v0"
TOL = {"rtol": 1e-5, "atol": 1e-5}


def single_file():
    spec = importlib.util.spec_from_file_location("iql_single_file", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sf():
    return single_file()


@pytest.fixture(scope="module")
def book_data():
    """The repository's datasets (the book's Pendulum data is committed there)."""
    with minari_path(REPO / "data") as root:
        yield root


def test_the_file_is_at_most_250_lines_and_imports_torch_gymnasium_minari_only():
    source = PATH.read_text()
    assert len(source.splitlines()) <= 250
    imported = set()
    for line in source.splitlines():
        words = line.split()
        if words[:1] == ["import"] or (words[:1] == ["from"] and "import" in words):
            imported.add(words[1].split(".")[0])
    stdlib = {"__future__", "argparse", "copy", "math"}
    assert imported - stdlib == {"torch", "gymnasium", "minari"}, imported


def test_loads_the_transitions_the_package_loads(sf, book_data):
    data, _, _ = sf.load(DATASET, "locomotion", "cpu")
    t = load_dataset(DATASET, reward_norm="locomotion").transitions
    pairs = {"obs": t.obs, "act": t.actions, "rew": t.rewards, "next_obs": t.next_obs}
    for key, theirs in pairs.items():
        torch.testing.assert_close(data[key], theirs, rtol=1e-6, atol=1e-6, msg=key)
    assert torch.equal(data["done"].squeeze(-1), t.terminals)
    # the locomotion normalisation changed the rewards: the comparison above is not of raw data
    raw, _, _ = sf.load(DATASET, "none", "cpu")
    assert not torch.allclose(raw["rew"], data["rew"])


def test_networks_are_initialised_as_the_package_does(sf):
    """Orthogonal weights (gain sqrt 2 hidden, 1 at the output) and zero biases."""
    torch.manual_seed(0)
    agent = sf.IQL(5, 3, sf.parse_args(["--hidden", "32"]))
    for net in (agent.value, *agent.critics, agent.actor.net):
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for i, lin in enumerate(linears):
            gain = 1.0 if i == len(linears) - 1 else math.sqrt(2.0)
            w = lin.weight
            gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
            torch.testing.assert_close(gram, gain**2 * torch.eye(len(gram)), rtol=0, atol=1e-5)
            assert torch.equal(lin.bias, torch.zeros_like(lin.bias))
    assert torch.equal(agent.actor.log_std, torch.zeros(3))


def weights(agent: IQLAgent) -> dict[str, torch.Tensor]:
    """Every weight of a package agent, named, critics split into their replicas as nn.Linear
    layouts (so that they compare with the single file's)."""
    out = {f"value.{k}": v for k, v in agent.value.net.state_dict().items()}
    out |= {f"actor.{k}": v for k, v in agent.actor.net.state_dict().items()}
    out["actor.log_std"] = agent.actor.log_std.detach()
    for name, replicated in (("critics", agent.critic), ("targets", agent.target_critic)):
        for j, layer in enumerate([*replicated.hidden, replicated.out]):
            for i in range(layer.weight.shape[0]):
                out[f"{name}.{i}.{2 * j}.weight"] = layer.weight[i].T.detach()
                out[f"{name}.{i}.{2 * j}.bias"] = layer.bias[i, 0].detach()
    return out


def single_file_weights(mine) -> dict[str, torch.Tensor]:
    out = {f"value.{k}": v for k, v in mine.value.state_dict().items()}
    out |= {f"actor.{k}": v for k, v in mine.actor.net.state_dict().items()}
    out["actor.log_std"] = mine.actor.log_std.detach()
    out |= {f"critics.{k}": v for k, v in mine.critics.state_dict().items()}
    out |= {f"targets.{k}": v for k, v in mine.targets.state_dict().items()}
    return out


def test_update_equals_the_package_update_on_the_same_batches_and_weights(sf, book_data):
    """Six updates with a cosine horizon of four (the actor's schedule reaches 0 inside the test):
    the same losses at every step, the same weights (value, both critics, both target critics,
    the actor's mean network and its log-std) after."""
    data, _, _ = sf.load(DATASET, "locomotion", "cpu")
    obs_dim, act_dim = data["obs"].shape[1], data["act"].shape[1]
    torch.manual_seed(1)
    agent = IQLAgent(obs_dim, act_dim, IQLConfig(hidden_dims=(32, 32), total_steps=4))
    mine = sf.IQL(obs_dim, act_dim, sf.parse_args(["--hidden", "32", "--steps", "4"]))
    copy_agent_weights(agent, mine.value, mine.critics, mine.targets, mine.actor.net, mine.actor.log_std)
    start = {name: w.clone() for name, w in weights(agent).items()}
    assert start.keys() == single_file_weights(mine).keys()
    for name, w in single_file_weights(mine).items():
        assert torch.equal(w, start[name]), name
    gen = torch.Generator().manual_seed(2)
    for _ in range(6):
        idx = torch.randint(len(data["obs"]), (256,), generator=gen)
        batch = {k: data[k][idx] for k in sf.KEYS}
        theirs = agent.update(
            {
                "obs": batch["obs"],
                "actions": batch["act"],
                "rewards": batch["rew"],
                "next_obs": batch["next_obs"],
                "terminals": batch["done"].squeeze(-1),
            }
        )
        ours = mine.update(*batch.values())
        for key, value in zip(("value_loss", "critic_loss", "actor_loss"), ours, strict=True):
            torch.testing.assert_close(value, theirs[key], **TOL, msg=key)
    after = weights(agent)
    moved = 0
    for name, w in single_file_weights(mine).items():
        torch.testing.assert_close(w, after[name], **TOL, msg=name)
        moved += not torch.allclose(after[name], start[name], rtol=0, atol=1e-4)
    # every network moved: the agreement is of six real updates, not of untouched weights
    assert moved > len(after) // 2, moved
    assert mine.opts[2].param_groups[0]["lr"] == 0.0 == pytest.approx(agent.actor_opt.param_groups[0]["lr"])


def test_trains_to_the_package_score_range(sf, book_data, tmp_path):
    """The single file's own loop, sampler and evaluation against the package's trainer, both
    with networks of 64, 3,000 steps, seed 0 and 10 evaluation episodes at the end: both learn
    (above 50, half-way from the random policy's 0 to the reference policy's 100; the untrained
    networks score near 0), and the difference of their mean scores is within three standard
    errors of that difference (the episodes' spread, not the seeds': one run each)."""
    steps, hidden, episodes = 3_000, 64, 10
    torch.set_num_threads(1)
    flags = ["--dataset", LEARN, "--steps", str(steps), "--hidden", str(hidden), "--seed", "0"]
    flags += ["--eval-every", str(steps), "--eval-episodes", str(episodes), "--device", "cpu"]
    _, ours = sf.train(sf.parse_args(flags))
    cfg = TrainConfig(
        dataset=LEARN,
        steps=steps,
        device="cpu",
        mode="eager",
        seed=0,
        out=str(tmp_path / "run"),
        eval_every=steps,
        eval_episodes=episodes,
        log_every=steps,
        val_fraction=0.0,
        iql=preset_config(LEARN, hidden_dims=(hidden, hidden)),
    )
    theirs = train(cfg, progress=False).eval_log.iloc[-1]
    mine = (float(ours.mean()), float(ours.std(correction=0)))
    package = (float(theirs["score_mean"]), float(theirs["score_std"]))
    se = math.hypot(mine[1], package[1]) / math.sqrt(episodes)
    assert mine[0] > 50 and package[0] > 50, (mine, package)
    assert abs(mine[0] - package[0]) <= 3 * se, (mine, package, se)
