"""Offline diagnostics: the held-out split keeps whole episodes, the numbers match a computation by
hand, and a dataset with no environment trains with diagnostics and without scores."""

import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import train_config

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.data import Transitions, load_dataset
from iql_tutorial.data.importer import import_arrays
from iql_tutorial.runs.diagnostics import DIAG_COLUMNS, held_out_episodes, offline_diagnostics, split_episodes
from iql_tutorial.runs.train import TrainConfig, train

torch.set_num_threads(1)
NO_ENV_ID = "me/random/noenv-v0"


def table(lengths, seed=0) -> Transitions:
    rng = np.random.default_rng(seed)
    eps = []
    for n in lengths:
        term = np.zeros(n, dtype=bool)
        term[-1] = rng.random() < 0.5
        eps.append({"observations": rng.normal(size=(n + 1, 2)), "actions": rng.uniform(-1, 1, (n, 1)),
                    "rewards": rng.normal(size=n), "terminations": term, "truncations": ~term})  # fmt: skip
    return Transitions.from_episodes(eps)


# ---------------------------------------------------------------------------------------- the split
def test_split_keeps_whole_episodes_respects_the_fraction_and_is_deterministic():
    lengths = list(range(3, 43))  # 40 episodes of different lengths
    t = table(lengths)
    train_t, val = split_episodes(t, 0.1, seed=3)
    tr_eps, val_eps = set(train_t.episode_ids.tolist()), set(val.episode_ids.tolist())
    assert tr_eps.isdisjoint(val_eps) and tr_eps | val_eps == set(range(40))  # no episode on both sides
    assert len(val_eps) == 4  # round(0.1 * 40) episodes
    for e in val_eps:  # every row of a held-out episode is held out
        assert int((val.episode_ids == e).sum()) == lengths[e]
    assert len(train_t) + len(val) == len(t)
    rows = torch.isin(t.episode_ids, val.episode_ids.unique())
    torch.testing.assert_close(val.obs, t.obs[rows])  # in order, unchanged
    torch.testing.assert_close(train_t.next_obs, t.next_obs[~rows])
    again = split_episodes(t, 0.1, seed=3)[1]
    assert torch.equal(again.episode_ids, val.episode_ids)  # same seed, same split
    others = {tuple(held_out_episodes(t.episode_ids, 0.1, s)) for s in range(6)}
    assert len(others) > 1  # the seed chooses
    state = torch.get_rng_state()
    split_episodes(t, 0.1, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # the global stream is untouched


@pytest.mark.parametrize(
    "fraction, episodes, held", [(0.0, 10, 0), (0.05, 3, 1), (0.5, 4, 2), (0.99, 4, 3), (0.3, 1, 0)]
)
def test_split_size(fraction, episodes, held):
    ids = torch.arange(episodes).repeat_interleave(5)
    assert len(held_out_episodes(ids, fraction, seed=0)) == held
    _, val = split_episodes(table([5] * episodes), fraction, seed=0)
    assert (val is None) == (held == 0)


def test_a_fraction_out_of_range_is_refused():
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig(dataset="x/y-v0", val_fraction=1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        held_out_episodes(np.zeros(3), -0.1, 0)


# ----------------------------------------------------------------------------------- by hand
def test_diagnostics_match_a_computation_by_hand():
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dims=(8,), beta=3.0, max_weight=2.0, gamma=0.9, expectile=0.7, actor_dropout=0.5)
    agent = IQLAgent(2, 1, cfg, mode="eager")
    with torch.no_grad():  # target critics different from the online ones, and non-trivial outputs
        for p in agent.target_critic.parameters():
            p.add_(0.3 * torch.randn_like(p))
        agent.actor.log_std.fill_(-0.5)
    t = table([4, 3, 5], seed=1)
    t.actions[0, 0] = 1.0  # clipped to 1 - 1e-5 as in training
    got = offline_diagnostics(agent, t)
    assert list(got) == DIAG_COLUMNS[1:-1]
    assert agent.actor.training  # the actor's mode is restored

    with torch.no_grad():
        obs, nxt = t.obs.double().numpy(), t.next_obs.double().numpy()
        act_t = t.actions.clamp(-1 + 1e-5, 1 - 1e-5)
        act, r, d = act_t.double().numpy()[:, 0], t.rewards.double().numpy()[:, 0], t.terminals.double().numpy()
        q = agent.critic(t.obs, act_t).double().numpy()[..., 0]  # [2, T]
        qt = agent.target_critic(t.obs, act_t).double().numpy()[..., 0].min(axis=0)  # [T]
        v = agent.value(t.obs).double().numpy()[:, 0]
        v_next = agent.value(t.next_obs).double().numpy()[:, 0]
        agent.actor.eval()
        mean, log_std = (x.double().numpy() for x in agent.actor.mean_and_log_std(t.obs))
        agent.actor.train()
    del obs, nxt
    y = r + 0.9 * (1 - d) * v_next
    td = np.mean([(y - q[i]) ** 2 for i in range(2)])
    u = qt - v
    expectile = np.mean(np.where(u < 0, 0.3, 0.7) * u**2)
    logp = -0.5 * ((act - mean[:, 0]) / np.exp(log_std[..., 0])) ** 2 - log_std[..., 0] - 0.5 * np.log(2 * np.pi)
    w = np.minimum(np.exp(3.0 * u), 2.0)
    assert (w == 2.0).any() and (w < 2.0).any()  # the clamp is exercised
    want = {"td_error": td, "expectile_loss": expectile, "log_likelihood": logp.mean(),
            "weighted_log_likelihood": (w * logp).sum() / w.sum(), "weight_mean": w.mean()}  # fmt: skip
    for k, value in want.items():
        assert got[k] == pytest.approx(value, rel=1e-5, abs=1e-6), k
    chunked = offline_diagnostics(agent, t, chunk_size=5)  # chunks add up to the same numbers
    for k in want:
        assert chunked[k] == pytest.approx(got[k], rel=1e-6), k


# ----------------------------------------------------------------------------- training without env
@pytest.fixture()
def no_env_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    rng = np.random.default_rng(0)
    n, episodes = 30, 6
    obs = rng.normal(size=(n * episodes, 3)).astype(np.float32)
    timeouts = np.tile(np.eye(1, n, n - 1)[0], episodes)
    arrays = {"observations": obs, "actions": rng.uniform(-1, 1, (n * episodes, 1)),
              "rewards": rng.normal(size=n * episodes), "terminals": np.zeros(n * episodes), "timeouts": timeouts}  # fmt: skip
    import_arrays(arrays, NO_ENV_ID, action_low=-1, action_high=1)
    return root


small = partial(train_config, dataset=NO_ENV_ID, steps=30, log_every=10, eval_every=10, eval_episodes=5,
                checkpoint_every=10, val_fraction=0.34,
                iql=IQLConfig(hidden_dims=(16, 16), batch_size=16, actor_dropout=0.1))  # fmt: skip


def test_training_without_an_environment_logs_diagnostics_and_no_scores(no_env_root, tmp_path, capsys):
    result = train(small(tmp_path / "run"), progress=False)
    err = capsys.readouterr().err
    assert err.count("no online evaluation") == 1 and err.count("\n") == 1, err  # said once, one line
    assert "2 held-out episode(s)" in err
    diag = pd.read_csv(tmp_path / "run" / "diag_log.csv")
    assert list(diag.columns) == DIAG_COLUMNS and list(diag["step"]) == [10, 20, 30]
    assert diag.drop(columns="step").notna().all().all()
    assert len(result.eval_log) == 0 and not (tmp_path / "run" / "eval_log.csv").exists()
    assert list(pd.read_csv(tmp_path / "run" / "train_log.csv")["step"]) == [10, 20, 30]
    held = set(result.validation.episode_ids.tolist())
    assert len(held) == 2 and len(result.validation) == 58  # 29 transitions each (no next_observations)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["val_fraction"] == 0.34
    last = offline_diagnostics(result.agent, result.validation)  # the last row is the final agent's
    assert diag.iloc[-1]["td_error"] == pytest.approx(last["td_error"])


def test_training_uses_only_the_training_episodes(no_env_root, tmp_path, monkeypatch):
    seen = []
    original = IQLAgent.run_updates

    def spy(self, data, count, generator=None):
        seen.append(set(data.episode_ids.tolist()))
        return original(self, data, count, generator)

    monkeypatch.setattr(IQLAgent, "run_updates", spy)
    result = train(small(tmp_path / "run", steps=10), progress=False)
    held = set(result.validation.episode_ids.tolist())
    assert seen and all(s.isdisjoint(held) and len(s) == 4 for s in seen)


def test_val_fraction_zero_trains_on_everything_and_writes_no_diagnostics(no_env_root, tmp_path, capsys):
    result = train(small(tmp_path / "run", val_fraction=0.0), progress=False)
    assert "holds nothing out" in capsys.readouterr().err
    assert result.validation is None and len(result.diag_log) == 0
    assert not (tmp_path / "run" / "diag_log.csv").exists()


def test_resume_needs_the_same_val_fraction_and_continues_the_diagnostics_exactly(no_env_root, tmp_path, monkeypatch):
    full = train(small(tmp_path / "full"), progress=False)
    original = IQLAgent.run_updates

    class Killed(Exception):
        pass

    def dying(self, data, count, generator=None):
        if self.num_updates >= 20:
            raise Killed()
        return original(self, data, count, generator)

    monkeypatch.setattr(IQLAgent, "run_updates", dying)
    with pytest.raises(Killed):
        train(small(tmp_path / "killed"), progress=False)
    monkeypatch.setattr(IQLAgent, "run_updates", original)
    with pytest.raises(ValueError, match="val_fraction"):
        train(small(tmp_path / "killed", val_fraction=0.5, resume=True), progress=False)
    resumed = train(small(tmp_path / "killed", resume=True), progress=False)
    cols = DIAG_COLUMNS[:-1]
    pd.testing.assert_frame_equal(full.diag_log[cols], resumed.diag_log[cols])
    for a, b in zip(full.agent.state_dict().values(), resumed.agent.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_with_an_environment_diagnostics_sit_next_to_the_scores(tiny_minari, tmp_path):
    cfg = TrainConfig(dataset="tests/pendulum/tiny-v0", steps=20, device="cpu", mode="eager", out=str(tmp_path / "r"),
                      log_every=10, eval_every=10, eval_episodes=1, checkpoint_every=20, val_fraction=0.34,
                      iql=IQLConfig(hidden_dims=(16, 16), batch_size=16))  # fmt: skip
    result = train(cfg, progress=False)
    assert list(result.eval_log["step"]) == [10, 20] and list(result.diag_log["step"]) == [10, 20]
    assert list(result.eval_log.columns) == ["step", "return_mean", "return_std", "score_mean", "score_std", "wall_s"]
    assert load_dataset("tests/pendulum/tiny-v0").has_env
